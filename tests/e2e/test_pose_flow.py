"""A SLEAP pose model through the local stack, as a user drives it over HTTP: upload labelled
frames of the synthetic animal (rendered by containers/pose/pose/synthetic.py), train a
single-instance UNet on the CPU with per-epoch metrics, then run it on a separate rendered
video and compare the keypoints it returns with the rendered ones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.local_stack import TERMINAL, wait_for_job
from tests.pose_data import pose_upload, synthetic_pose_data

EPOCHS = 12
TRAIN_PARAMS = {
    "model_type": "single_instance",
    "backbone": "unet",
    "epochs": EPOCHS,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "sigma": 2.5,
    "output_stride": 2,
    "validation_fraction": 0.2,
    "seed": 0,
}
# How far a predicted keypoint may be from the rendered one, in pixels of the 96-px frames.
# The confidence maps are predicted at half resolution (output_stride 2), so one output cell
# is 2 px; sleap-nn refines peaks to sub-cell precision. A keypoint within 2 cells (4 px, about
# 4% of the frame, a third of the animal's head-to-body distance) is on the right body part.
MAX_PIXEL_ERROR = 4.0
MIN_GOOD_FRAMES = 0.8  # of the video's frames must have every keypoint within the bound


@pytest.fixture(scope="module")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_pose_data(
        tmp_path_factory.mktemp("animal"), "slp+video", frames=60, video_frames=20, seed=3
    )


@pytest.fixture(scope="module")
def trained(api: httpx.Client, animal: Path) -> dict[str, Any]:
    created = api.post(
        "/v1/datasets",
        data={"name": "animal", "task": "pose"},
        files=pose_upload(animal),
    )
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["labeled_frames"] == 60 and dataset["classes"] == ["head", "body", "tail"]
    response = api.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "pose",
            "dataset_id": dataset["id"],
            "model_name": "animal",
            "params": TRAIN_PARAMS,
        },
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    running = wait_for_job(api, job_id, lambda j: j["current_epoch"] >= 1 or j["status"] in TERMINAL, 600)
    job = wait_for_job(api, job_id, lambda j: j["status"] in TERMINAL, 900)
    assert job["status"] == "SUCCEEDED", job
    return {"job": job, "first_seen": running, "model_id": response.json()["model_id"], "dataset": dataset}


def test_training_reports_each_epoch_as_it_ends(api: httpx.Client, trained: dict[str, Any]) -> None:
    job = trained["job"]
    assert trained["first_seen"]["current_epoch"] < EPOCHS  # seen while it was training
    assert job["current_epoch"] == job["epochs"] == EPOCHS and job["started_at"] and job["finished_at"]
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    for entry in epochs:
        assert isinstance(entry["loss"], float) and isinstance(entry["val_loss"], float), entry
        assert entry["lr"] and entry["lr"] > 0 and entry["duration_seconds"] > 0
    assert epochs[-1]["loss"] < epochs[0]["loss"]


def test_the_model_has_its_skeleton_and_exports(
    api: httpx.Client, trained: dict[str, Any], tmp_path: Path
) -> None:
    model = api.get(f"/v1/models/{trained['model_id']}").json()
    assert model["status"] == "ready" and model["task"] == "pose"
    assert model["classes"] == ["head", "body", "tail"] and model["model_type"] == "single_instance"
    assert model["skeleton"]["nodes"] == ["head", "body", "tail"]
    assert {"sleap", "onnx"} <= set(model["exports"])
    assert model["metrics"]["val_mean_pixel_error"] < MAX_PIXEL_ERROR
    assert model["plot_loss"]
    sleap_zip = api.get(f"/v1/models/{trained['model_id']}/exports/sleap")
    assert sleap_zip.status_code == 200 and sleap_zip.content[:2] == b"PK"
    onnx = api.get(f"/v1/models/{trained['model_id']}/exports/onnx")
    assert onnx.status_code == 200 and len(onnx.content) > 1000


def run_on_video(api: httpx.Client, model_id: str, video: bytes, **params: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/jobs",
        data={"type": "infer", "task": "pose", "model_id": model_id, "params": json.dumps(params)},
        files={"video": ("walk.mp4", video)},
    )
    assert response.status_code == 202, response.text
    job = wait_for_job(api, response.json()["id"], lambda j: j["status"] in TERMINAL, 600)
    assert job["status"] == "SUCCEEDED", job
    return job


def pixel_errors(predicted: dict[str, Any], truth: dict[str, Any]) -> list[float]:
    """The largest keypoint error of each rendered video frame (inf where nothing was found)."""
    by_frame = {f["frame_idx"]: f["instances"] for f in predicted["frames"]}
    worst = []
    for frame in truth["video"]:
        instances = by_frame.get(frame["frame_idx"], [])
        if not instances:
            worst.append(math.inf)
            continue
        points = instances[0]["points"]
        errors = [
            math.dist(points[node][:2], xy) if points[node][0] is not None else math.inf
            for node, xy in frame["points"].items()
        ]
        worst.append(max(errors))
    return worst


def test_video_inference_recovers_the_rendered_keypoints(
    api: httpx.Client, trained: dict[str, Any], animal: Path
) -> None:
    truth = json.loads((animal / "truth.json").read_text())
    job = run_on_video(
        api, trained["model_id"], (animal / "test_video.mp4").read_bytes(), nodes=["head", "body", "tail"]
    )
    assert (
        job["progress_done"] == job["progress_total"] == len(truth["video"])
        and job["progress_unit"] == "frames"
    )

    results = api.get(f"/v1/jobs/{job['id']}/results").json()
    assert results["frames"]["total"] == results["frames"]["predicted"] == len(truth["video"])
    assert set(results["files"]) == {"slp", "analysis_h5", "json", "preview_video", "preview_image"}
    predicted = api.get(results["downloads"]["json"]).json()
    errors = pixel_errors(predicted, truth)
    good = sum(error <= MAX_PIXEL_ERROR for error in errors)
    assert good >= MIN_GOOD_FRAMES * len(errors), f"per-frame worst errors: {[round(e, 1) for e in errors]}"

    magic = {"slp": b"\x89HDF", "analysis_h5": b"\x89HDF", "preview_image": b"\x89PNG"}
    for kind, start in magic.items():
        download = api.get(results["downloads"][kind])
        assert download.status_code == 200 and download.content.startswith(start), kind
    assert api.get(results["downloads"]["preview_video"]).content[4:8] == b"ftyp"


def test_a_frame_range_and_stride_predict_only_those_frames(
    api: httpx.Client, trained: dict[str, Any], animal: Path
) -> None:
    video = (animal / "test_video.mp4").read_bytes()
    job = run_on_video(
        api, trained["model_id"], video, frame_start=2, frame_end=10, frame_stride=3, preview="none"
    )
    assert job["progress_done"] == job["progress_total"] == 3  # frames 2, 5, 8
    results = api.get(f"/v1/jobs/{job['id']}/results").json()
    assert results["frames"]["predicted"] == 3 and "preview_video" not in results["files"]
    predicted = api.get(results["downloads"]["json"]).json()
    assert [f["frame_idx"] for f in predicted["frames"]] == [2, 5, 8]
