"""Top-down (two sleap-nn models) and bottom-up through train and infer, and (marked slow)
every backbone: short runs that check the wiring, the exports and the events; the accuracy
tests are in test_train_job.py and test_infer_job.py."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import JobRun, job_dir, run_entrypoint, training_channel

from pose.synthetic import write_dataset

ONNX_OUTPUTS = {
    "topdown": ["centroids", "centroid_vals", "peaks", "peak_vals", "instance_valid"],
    "bottomup": ["peaks", "peak_vals", "peak_mask", "line_scores", "candidate_mask"],
    "single_instance": ["peaks", "peak_vals"],
}
SLEAP_DIRS = {
    "topdown": ["sleap_model/centroid", "sleap_model/centered_instance"],
    "bottomup": ["sleap_model"],
    "single_instance": ["sleap_model"],
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small")
    write_dataset(out, frames=10, size=96, seed=5, video_frames=4, layout="slp+video")
    return out


def train(base: Path, data: Path, **hyperparameters: object) -> JobRun:
    job_dir(
        base,
        {"job_id": "job-types", "epochs": 2, "learning_rate": 1e-3, "sigma": 2.5,
         "validation_fraction": 0.2, "seed": 0, **hyperparameters},
        {"training": training_channel(data)},
    )  # fmt: skip
    run = run_entrypoint(base, "train")
    assert run.returncode == 0, run.stderr[-4000:] + (run.failure or "")
    return run


def check_trained(run: JobRun, model_type: str, stages: int, epochs: int) -> None:
    assert run.statuses() == ["DOWNLOADING", "DOWNLOADED", "RUNNING", "EXPORTING"]
    events = run.kinds("epoch")
    assert [e["epoch"] for e in events] == list(range(1, stages * epochs + 1))
    assert {e["epochs"] for e in events} == {stages * epochs}
    validated = run.manifest("trainyard_model.json")["config"]["validation_fraction"] > 0
    assert all(isinstance(e["loss"], float) for e in events)
    assert all((e["val_loss"] is not None) == validated for e in events)
    manifest = run.manifest("trainyard_model.json")
    if not validated:
        assert manifest["frames"]["val"] == 0 and manifest["metrics"]["val_loss"] is None
        assert manifest["metrics"]["val_mean_pixel_error"] is None
    assert manifest["model_type"] == model_type
    assert manifest["sleap_model"]["dirs"] == SLEAP_DIRS[model_type]
    assert manifest["output"]["names"] == ONNX_OUTPUTS[model_type]
    assert max(manifest["onnx_check"]["max_abs_diff"].values()) < 1e-3
    with zipfile.ZipFile(run.model_dir / "sleap_model.zip") as archive:
        names = set(archive.namelist())
    for directory in SLEAP_DIRS[model_type]:
        assert (run.model_dir / directory / "best.ckpt").is_file()
        assert f"{directory}/best.ckpt" in names


@pytest.mark.parametrize(
    ("model_type", "stages", "extra"),
    [
        ("topdown", 2, {"anchor_part": "body"}),
        # Without validation: sleap-nn validates on the training frames, nothing is reported.
        ("bottomup", 1, {"max_instances": 2, "validation_fraction": 0}),
    ],
)
def test_multi_instance_models_train_export_and_predict(
    tmp_path: Path, small: Path, model_type: str, stages: int, extra: dict[str, object]
) -> None:
    run = train(tmp_path / "train", small, model_type=model_type, **extra)
    check_trained(run, model_type, stages, epochs=2)
    if model_type == "topdown":
        # The two stages' epochs, in order: the loss restarts high with the second model.
        losses = [e["loss"] for e in run.kinds("epoch")]
        assert losses[2] > losses[1]

    base = job_dir(
        tmp_path / "infer",
        {"job_id": "job-types-infer", "mode": "infer", "preview": "image", "peak_threshold": 0.05},
        {"model": run.model_dir, "video": small / "test_video.mp4"},
    )
    inferred = run_entrypoint(base)
    assert inferred.returncode == 0, inferred.stderr[-4000:] + (inferred.failure or "")
    results = inferred.manifest("trainyard_results.json")
    assert results["frames"]["predicted"] == 4
    assert results["model"]["model_type"] == model_type
    assert inferred.kinds("progress")[-1]["done"] == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    "backbone", ["unet", "unet_medium_rf", "unet_large_rf", "convnext", "swint"]
)
def test_every_backbone_trains_and_exports(tmp_path: Path, small: Path, backbone: str) -> None:
    run = train(tmp_path, small, backbone=backbone, epochs=1)
    check_trained(run, "single_instance", 1, epochs=1)
    assert run.manifest("trainyard_model.json")["backbone"] == backbone


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_type", "backbone", "output_stride"),
    [("single_instance", "unet", 1), ("single_instance", "swint", 32), ("topdown", "convnext", 4),
     ("bottomup", "unet_large_rf", 8)],
)  # fmt: skip
def test_model_types_strides_and_backbones_combine(
    tmp_path: Path, small: Path, model_type: str, backbone: str, output_stride: int
) -> None:
    run = train(tmp_path, small, model_type=model_type, backbone=backbone,
                output_stride=output_stride, epochs=1)  # fmt: skip
    stages = 2 if model_type == "topdown" else 1
    check_trained(run, model_type, stages, epochs=1)
