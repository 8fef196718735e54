"""The training channel: dataset.json, video paths of the labeller's machine mapped to the
uploaded files, the checks on labels, and the seeded validation split (real sleap-io files)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from jobkit.errors import DataError
from pose.dataset import load_training_data, split_frames
from pose.synthetic import LABELLER_VIDEO_PATH, write_dataset


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("upload")
    write_dataset(out, frames=10, size=64, seed=1, video_frames=2, layout="slp+video")
    return out


def channel_with(tmp_path: Path, upload: Path, *names: str, manifest: dict | None = None) -> Path:
    channel = tmp_path / "training"
    channel.mkdir()
    for name in names:
        target = channel / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(upload / Path(name).name, target)
    if manifest is not None:
        (channel / "dataset.json").write_text(json.dumps(manifest))
    return channel


def load(channel: Path, fraction: float = 0.2, model_type: str = "single_instance"):
    return load_training_data(channel, validation_fraction=fraction, seed=0, model_type=model_type)


def test_the_labellers_video_path_is_mapped_to_the_uploaded_file(
    tmp_path: Path, upload: Path
) -> None:
    assert sio.load_slp(str(upload / "labels.slp"), open_videos=False).videos[0].filename == (
        LABELLER_VIDEO_PATH
    )
    channel = channel_with(
        tmp_path,
        upload,
        "labels.slp",
        "clips/video.mp4",
        manifest={"labels": "labels.slp", "videos": ["clips/video.mp4"]},
    )
    data = load(channel)
    assert Path(data.labels.videos[0].filename) == channel / "clips" / "video.mp4"
    assert data.skeleton == {
        "name": "animal",
        "nodes": ["head", "body", "tail"],
        "edges": [["head", "body"], ["body", "tail"]],
    }
    assert data.videos[0]["frames"] == 10 and data.videos[0]["width"] == 64
    assert (len(data.train), len(data.validation), data.instances) == (8, 2, 10)
    assert "10 labelled frames (8 train, 2 validation), 10 instances" in data.summary
    # The frames decode from the uploaded file.
    assert data.train.labeled_frames[0].image.shape == (64, 64, 1)


def test_without_dataset_json_the_one_labels_file_is_used(tmp_path: Path, upload: Path) -> None:
    data = load(channel_with(tmp_path, upload, "labels.slp", "video.mp4"))
    assert data.labels_file.name == "labels.slp"


def test_a_video_that_was_not_uploaded_fails_naming_it(tmp_path: Path, upload: Path) -> None:
    channel = channel_with(tmp_path, upload, "labels.slp", manifest={"labels": "labels.slp"})
    with pytest.raises(
        DataError, match=re.escape("video video.mp4 used by labels.slp is not in the upload")
    ):
        load(channel)


def test_dataset_json_must_name_an_uploaded_labels_file(tmp_path: Path, upload: Path) -> None:
    channel = channel_with(
        tmp_path, upload, "labels.slp", "video.mp4", manifest={"labels": "other.slp"}
    )
    with pytest.raises(DataError, match=re.escape("dataset.json names labels file other.slp")):
        load(channel)
    (channel / "dataset.json").write_text(json.dumps({"labels": "../../etc/passwd"}))
    with pytest.raises(DataError, match="outside the dataset"):
        load(channel)


def test_a_package_with_embedded_frames_needs_no_video(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    write_dataset(out, frames=6, size=64, seed=2, video_frames=2, layout="pkg")
    channel = tmp_path / "training"
    channel.mkdir()
    shutil.copy(out / "labels.pkg.slp", channel)
    data = load(channel, fraction=0.0)
    assert data.validation is None and len(data.train) == 6
    assert data.videos[0]["name"] == "labels.pkg.slp"


def test_a_corrupt_video_fails_as_undecodable(tmp_path: Path, upload: Path) -> None:
    channel = channel_with(tmp_path, upload, "labels.slp")
    (channel / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    with pytest.raises(DataError, match=re.escape("video video.mp4 cannot be decoded")):
        load(channel)


def save_labels(path: Path, *, skeleton: bool, frames: int) -> Path:
    video = sio.Video.from_filename("/labeller/videos/video.mp4", open_backend=False)
    skeletons = [sio.Skeleton(nodes=["head", "tail"], edges=[["head", "tail"]])] if skeleton else []
    labelled = [
        sio.LabeledFrame(
            video=video,
            frame_idx=i,
            instances=[sio.Instance.from_numpy(np.array([[1.0, 1.0], [5.0, 5.0]]), skeletons[0])],
        )
        for i in range(frames)
    ]
    sio.save_slp(
        sio.Labels(labeled_frames=labelled, videos=[video], skeletons=skeletons),
        str(path),
        verbose=False,
    )
    return path


def test_labels_without_labelled_frames_fail(tmp_path: Path, upload: Path) -> None:
    channel = channel_with(tmp_path, upload, "video.mp4")
    save_labels(channel / "labels.slp", skeleton=True, frames=0)
    with pytest.raises(DataError, match=re.escape("labels.slp has no labelled frames")):
        load(channel)


def test_labels_without_a_skeleton_fail(tmp_path: Path, upload: Path) -> None:
    channel = channel_with(tmp_path, upload, "video.mp4")
    save_labels(channel / "labels.slp", skeleton=False, frames=0)
    with pytest.raises(DataError, match=re.escape("labels.slp defines no skeleton")):
        load(channel)


def test_a_validation_split_needs_two_frames(tmp_path: Path, upload: Path) -> None:
    channel = channel_with(tmp_path, upload, "video.mp4")
    save_labels(channel / "labels.slp", skeleton=True, frames=1)
    with pytest.raises(DataError, match="1 labelled frame is too few to hold out"):
        load(channel, fraction=0.1)
    assert load(channel, fraction=0.0).validation is None


def test_the_split_is_seeded_and_keeps_at_least_one_frame_on_each_side(upload: Path) -> None:
    labels = sio.load_slp(str(upload / "labels.slp"), open_videos=False)
    train, val = split_frames(labels, 0.3, seed=4)
    _, again_val = split_frames(labels, 0.3, seed=4)
    assert [lf.frame_idx for lf in val.labeled_frames] == [
        lf.frame_idx for lf in again_val.labeled_frames
    ]
    assert len(val) == 3 and len(train) == 7
    assert {lf.frame_idx for lf in train} | {lf.frame_idx for lf in val} == set(range(10))
    _, tiny = split_frames(labels, 0.01, seed=0)
    assert len(tiny) == 1
    everything_but_one, _ = split_frames(labels, 0.9, seed=0)
    assert len(everything_but_one) == 1
