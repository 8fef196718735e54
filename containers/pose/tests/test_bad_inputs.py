"""Bad inputs fail the job with one clear line in output/failure, a `failed` event and exit 1,
before anything is trained or predicted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sleap_io as sio
from conftest import job_dir, run_entrypoint, training_channel

from pose.synthetic import write_dataset

MODEL_MANIFEST = {
    "schema": "trainyard.model/1",
    "task": "pose",
    "model_type": "single_instance",
    "backbone": "unet",
    "skeleton": {
        "name": "animal",
        "nodes": ["head", "body", "tail"],
        "edges": [["head", "body"], ["body", "tail"]],
    },
}


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad-upload")
    write_dataset(out, frames=6, size=64, seed=1, video_frames=3, layout="slp+video")
    return out


def labels_without(path: Path, *, skeleton: bool) -> Path:
    """labels.slp over the labeller's video.mp4 with a skeleton (or none) and no labels."""
    video = sio.Video.from_filename("/labeller/videos/video.mp4", open_backend=False)
    skeletons = [sio.Skeleton(nodes=["head", "tail"], edges=[["head", "tail"]])] if skeleton else []
    sio.save_slp(sio.Labels(videos=[video], skeletons=skeletons), str(path), verbose=False)
    return path


def fails(base: Path, reason: str) -> str:
    run = run_entrypoint(base, "train")
    assert run.returncode == 1, run.stderr[-3000:]
    failure = run.failure or ""
    assert failure.endswith("\n") and failure.count("\n") == 1
    assert reason in failure, failure
    assert run.kinds("failed")[-1]["error"] == failure.strip()
    assert not (run.model_dir / "trainyard_model.json").exists()
    return failure


def train_job(tmp_path: Path, files: list[Path], **hyperparameters: Any) -> Path:
    return job_dir(tmp_path, {"job_id": "bad", "epochs": 1, **hyperparameters}, {"training": files})


def copy_upload(upload: Path, tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "upload"
    folder.mkdir()
    for name in names:
        shutil.copy(upload / name, folder / name)
    return folder


def test_labels_with_no_labelled_frames(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "video.mp4")
    labels_without(folder / "labels.slp", skeleton=True)
    fails(
        train_job(tmp_path / "job", training_channel(folder)),
        "labels.slp has no labelled frames (frames with user-labelled instances)",
    )


def test_labels_with_no_skeleton(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "video.mp4")
    labels_without(folder / "labels.slp", skeleton=False)
    fails(train_job(tmp_path / "job", training_channel(folder)), "labels.slp defines no skeleton")


def test_a_corrupt_training_video(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "labels.slp")
    (folder / "video.mp4").write_bytes(b"this is not a video")
    fails(
        train_job(tmp_path / "job", training_channel(folder)), "video video.mp4 cannot be decoded: "
    )


def test_a_video_missing_from_the_upload(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "labels.slp")
    fails(
        train_job(tmp_path / "job", training_channel(folder, videos=())),
        "video video.mp4 used by labels.slp is not in the upload",
    )


def test_too_few_frames_for_the_split(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "video.mp4")
    labels = sio.load_slp(str(upload / "labels.slp"), open_videos=False)
    labels.labeled_frames = labels.labeled_frames[:1]
    sio.save_slp(labels, str(folder / "labels.slp"), verbose=False)
    fails(
        train_job(tmp_path / "job", training_channel(folder), validation_fraction=0.5),
        "1 labelled frame is too few to hold out validation_fraction=0.5",
    )


def test_an_anchor_part_that_is_not_a_node(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "labels.slp", "video.mp4")
    fails(
        train_job(
            tmp_path / "job", training_channel(folder), model_type="topdown", anchor_part="thorax"
        ),
        "hyperparameter anchor_part='thorax' is not a node of the skeleton: must be one of "
        "head, body, tail",
    )


def test_an_unknown_hyperparameter(tmp_path: Path, upload: Path) -> None:
    folder = copy_upload(upload, tmp_path, "labels.slp", "video.mp4")
    fails(
        train_job(tmp_path / "job", training_channel(folder), learning_rat=0.1),
        "unknown hyperparameter(s): learning_rat",
    )


def test_several_instances_on_a_frame_for_a_single_instance_model(
    tmp_path: Path, upload: Path
) -> None:
    folder = copy_upload(upload, tmp_path, "video.mp4")
    labels = sio.load_slp(str(upload / "labels.slp"), open_videos=False)
    frame = labels.labeled_frames[0]
    frame.instances.append(
        sio.Instance.from_numpy(
            np.array([[5.0, 5.0], [9.0, 9.0], [13.0, 13.0]]), labels.skeletons[0]
        )
    )
    sio.save_slp(labels, str(folder / "labels.slp"), verbose=False)
    fails(
        train_job(tmp_path / "job", training_channel(folder)),
        "labels.slp: frame 0 has 2 instances; model_type single_instance needs one per frame",
    )


def infer_job(tmp_path: Path, video: Path, **hyperparameters: Any) -> Path:
    model = tmp_path / "model"
    model.mkdir(parents=True)
    (model / "trainyard_model.json").write_text(json.dumps(MODEL_MANIFEST))
    return job_dir(
        tmp_path / "job",
        {"job_id": "bad-infer", "mode": "infer", **hyperparameters},
        {"model": model, "video": video},
    )


def test_a_corrupt_video_to_predict(tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    fails(infer_job(tmp_path, video), "video broken.mp4 cannot be decoded: ")


def test_nodes_that_are_not_the_models(tmp_path: Path, upload: Path) -> None:
    failure = fails(
        infer_job(tmp_path, upload / "test_video.mp4", nodes=["head", "thorax", "tail"]),
        "hyperparameter nodes=['head', 'thorax', 'tail'] does not match the model's skeleton "
        "nodes ['head', 'body', 'tail']",
    )
    assert "missing body; not in the model: thorax" in failure


def test_a_frame_start_past_the_end_of_the_video(tmp_path: Path, upload: Path) -> None:
    fails(
        infer_job(tmp_path, upload / "test_video.mp4", frame_start=3),
        "hyperparameter frame_start=3 is beyond the video's last frame (3 frames",
    )


def test_a_model_channel_without_a_trained_model(tmp_path: Path, upload: Path) -> None:
    base = job_dir(
        tmp_path,
        {"job_id": "bad-infer", "mode": "infer"},
        {"model": [upload / "truth.json"], "video": upload / "test_video.mp4"},
    )
    fails(base, "the model has no trainyard_model.json")


def test_usage_other_than_train_is_refused(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "evaluate")
    assert run.returncode == 2 and "usage: python -m pose [train]" in run.stderr
