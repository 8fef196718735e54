"""`python -m pose train` end to end on the synthetic animal: events, the model dir, the ONNX
export and the keypoint accuracy on held-out frames.

Accuracy bound: the frames are 96 px, the animal about 40 px long (head to tail tip). The
model predicts confidence maps at half resolution (output_stride 2: one cell is 2 px) with a
Gaussian of sigma 2.5 px, and sleap-nn refines each peak below the cell size. A keypoint
within 2 cells (4 px, a third of the head-to-body distance) is on the right body part;
an untrained or confused model is off by 10-40 px. So: the mean error on the 12 held-out
frames must be under 4 px (it is about 1.2 px after 12 epochs), and every keypoint of the
export's integer-cell peaks must be within 4 px + one cell diagonal (2√2 px).
"""

from __future__ import annotations

import itertools
import json
import math
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import sleap_io as sio
from conftest import TRAIN_HYPERPARAMETERS, JobRun

EPOCHS = TRAIN_HYPERPARAMETERS["epochs"]
MAX_PIXEL_ERROR = 4.0
CELL_DIAGONAL = 2 * math.sqrt(2)


def test_statuses_come_in_contract_order(trained: JobRun) -> None:
    assert trained.statuses() == ["DOWNLOADING", "DOWNLOADED", "RUNNING", "EXPORTING"]
    downloaded = trained.kinds("status")[1]
    assert downloaded["message"].startswith("60 labelled frames (48 train, 12 validation)")
    assert "nodes head, body, tail" in downloaded["message"]
    assert not trained.kinds("failed") and trained.failure is None
    # Every epoch event between RUNNING and EXPORTING.
    kinds = [e["kind"] for e in trained.events]
    assert kinds == ["status"] * 3 + ["epoch"] * EPOCHS + ["status"]


def test_an_epoch_event_is_sent_as_each_epoch_ends(trained: JobRun) -> None:
    epochs = trained.kinds("epoch")
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    assert [e["event_id"] for e in epochs] == [f"job-train:epoch:{n}" for n in range(1, EPOCHS + 1)]
    for event in epochs:
        assert event["epochs"] == EPOCHS
        assert isinstance(event["loss"], float) and isinstance(event["val_loss"], float)
        assert 0 < event["lr"] <= TRAIN_HYPERPARAMETERS["learning_rate"]
        assert event["duration_seconds"] > 0
        assert event["accuracy"] is None and event["val_accuracy"] is None
    assert epochs[0]["lr"] == TRAIN_HYPERPARAMETERS["learning_rate"]
    assert epochs[-1]["loss"] < epochs[0]["loss"] / 2
    # Sent as the epochs ended, not in a burst at the end: the gaps between the events'
    # times add up to the epochs' own durations.
    times = [datetime.fromisoformat(e["time"]).timestamp() for e in epochs]
    assert all(b > a for a, b in itertools.pairwise(times))
    spread = times[-1] - times[0]
    assert spread >= 0.7 * sum(e["duration_seconds"] for e in epochs[1:])


def test_the_model_dir_holds_the_sleap_model_its_zip_and_the_onnx_export(trained: JobRun) -> None:
    model_dir = trained.model_dir
    sleap_dir = model_dir / "sleap_model"
    for name in ("best.ckpt", "training_config.yaml", "training_log.csv"):
        assert (sleap_dir / name).is_file(), name
    with zipfile.ZipFile(model_dir / "sleap_model.zip") as archive:
        names = set(archive.namelist())
    assert {"sleap_model/best.ckpt", "sleap_model/training_config.yaml"} <= names
    assert (model_dir / "model.onnx").stat().st_size > 100_000
    metadata = json.loads((model_dir / "export_metadata.json").read_text())
    assert metadata["model_type"] == "single_instance" and metadata["node_names"] == [
        "head",
        "body",
        "tail",
    ]


def test_trainyard_model_json_describes_the_model(trained: JobRun) -> None:
    manifest = trained.manifest("trainyard_model.json")
    assert manifest["schema"] == "trainyard.model/1" and manifest["task"] == "pose"
    assert (manifest["model_type"], manifest["backbone"]) == ("single_instance", "unet")
    assert manifest["classes"] == ["head", "body", "tail"]
    assert manifest["skeleton"] == {
        "name": "animal",
        "nodes": ["head", "body", "tail"],
        "edges": [["head", "body"], ["body", "tail"]],
    }
    assert manifest["exports"] == {"sleap": "sleap_model.zip", "onnx": "model.onnx"}
    assert manifest["frames"] == {"train": 48, "val": 12}
    assert manifest["input"]["height"] == manifest["input"]["width"] == 96
    assert manifest["input"]["channels"] == 1
    assert manifest["config"] == {
        **TRAIN_HYPERPARAMETERS,
        "input_scale": 1.0,
        "augmentation": False,
        "anchor_part": None,
        "max_instances": None,
    }
    last = trained.kinds("epoch")[-1]
    assert manifest["metrics"]["loss"] == last["loss"]
    assert manifest["metrics"]["val_loss"] == last["val_loss"]
    # Written last: nothing in the model dir is newer.
    written = (trained.model_dir / "trainyard_model.json").stat().st_mtime
    assert all(p.stat().st_mtime <= written for p in trained.model_dir.rglob("*") if p.is_file())


def test_held_out_keypoints_are_within_the_bound(trained: JobRun) -> None:
    error = trained.manifest("trainyard_model.json")["metrics"]["val_mean_pixel_error"]
    assert error is not None and error < MAX_PIXEL_ERROR


def held_out_frames(trained: JobRun, truth: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The validation frames (uint8, N×1×H×W) and their rendered keypoints (N×nodes×2)."""
    validation = sio.load_slp(str(trained.model_dir / "sleap_model" / "labels_gt.val.0.slp"))
    rendered = {f["frame_idx"]: f["points"] for f in truth["labels"]}
    images, points = [], []
    for lf in validation.labeled_frames:
        images.append(np.asarray(lf.image).transpose(2, 0, 1))
        points.append([rendered[lf.frame_idx][n] for n in truth["nodes"]])
    return np.stack(images), np.array(points)


def test_the_onnx_export_was_checked_and_finds_the_keypoints(
    trained: JobRun, truth: dict[str, Any]
) -> None:
    check = trained.manifest("trainyard_model.json")["onnx_check"]
    assert check["frames"] == 8 and check["atol"] <= 1e-3
    assert max(check["max_abs_diff"].values()) < 1e-3
    # Independently of the job: ONNX Runtime on the held-out frames finds every keypoint.
    images, points = held_out_frames(trained, truth)
    session = ort.InferenceSession(str(trained.model_dir / "model.onnx"))
    peaks, values = session.run(["peaks", "peak_vals"], {"image": images})
    assert peaks.shape == points.shape and np.all(values > 0.2)
    errors = np.linalg.norm(peaks - points, axis=-1)
    assert errors.max() < MAX_PIXEL_ERROR + CELL_DIAGONAL, errors.round(1)


def test_the_sleap_model_runs_with_sleap_nn_from_its_zip(
    trained: JobRun, truth: dict[str, Any], tmp_path: Path
) -> None:
    """What a user does with the download: unzip, sleap-nn's predictor on a video."""
    from sleap_nn.inference.predictor import Predictor  # noqa: PLC0415

    with zipfile.ZipFile(trained.model_dir / "sleap_model.zip") as archive:
        archive.extractall(tmp_path)
    predictor = Predictor.from_model_paths([str(tmp_path / "sleap_model")], device="cpu")
    validation = sio.load_slp(str(trained.model_dir / "sleap_model" / "labels_gt.val.0.slp"))
    predicted = predictor.predict(validation)
    assert len(predicted) == 12 and all(len(lf.instances) == 1 for lf in predicted)
