"""The coreml, torch and pytorchmobile exports: each is produced from a real (tiny) classifier
and detector, then loaded back with its own runtime, independently of the export's own check:
TorchScript with torch.jit.load and the lite interpreter with _load_for_lite_interpreter, both
compared with ONNX Runtime; the Core ML package opened with coremltools (predictions need
macOS, so its input and outputs are checked, not its numbers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from trainer.contract import TrainingConfig
from trainer.detection.contract import DetectionConfig
from trainer.detection.model import INPUT_NAME as DETECTION_INPUT
from trainer.detection.model import anchor_count, build_detector, build_export_model
from trainer.errors import ExportCheckError
from trainer.export import check_onnx, export_onnx
from trainer.extra_exports import (
    COREML_PACKAGE,
    EXTRA_EXPORT_FILES,
    _compare,
    export_extra_formats,
)
from trainer.models import INPUT_NAME, build_classifier

CLASSES = ["circle", "square", "triangle"]
ALL_EXTRA = ("coreml", "torch", "pytorchmobile")


def _pixels(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def _onnx_outputs(onnx_path: Path, images: np.ndarray, names: list[str]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(names, {session.get_inputs()[0].name: images})


def _torch_outputs(module: Any, images: np.ndarray) -> list[np.ndarray]:
    """One image per call (the traced batch size), outputs stacked back."""
    import torch  # noqa: PLC0415

    rows = []
    with torch.no_grad():
        for image in images:
            out = module(torch.from_numpy(image[np.newaxis]))
            # a detector's module returns [boxes, scores], a classifier's one tensor
            outputs = out if isinstance(out, list | tuple) else [out]
            rows.append([o.numpy() for o in outputs])
    return [np.concatenate(column) for column in zip(*rows, strict=True)]


def _open_coreml(zip_path: Path, into: Path) -> Any:
    import coremltools as ct  # noqa: PLC0415

    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert all(name.startswith(f"{COREML_PACKAGE}/") for name in names), names
        archive.extractall(into)
    return ct.models.MLModel(str(into / COREML_PACKAGE), skip_model_load=True)


def _feature_shapes(features: Any) -> dict[str, list[int]]:
    return {f.name: list(f.type.multiArrayType.shape) for f in features}


@pytest.fixture(scope="module")
def classifier_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3-class small_cnn at 32 px, exported to ONNX and then to every extra format."""
    model_dir = tmp_path_factory.mktemp("classifier")
    model = build_classifier(TrainingConfig(job_id="t", image_size=32), len(CLASSES)).model
    onnx_path = model_dir / "model.onnx"
    export_onnx(model, onnx_path, 32)
    images = _pixels(6, 32)
    check = check_onnx(model, onnx_path, images)
    record = export_extra_formats(
        model,
        model_dir,
        formats=("onnx", *ALL_EXTRA),
        onnx_path=onnx_path,
        image_size=32,
        input_name=check.input_name,
        onnx_output_names=[check.output_name],
        output_names=["probabilities"],
        classes=CLASSES,
        check_images=images,
    )
    return {"dir": model_dir, "record": record, "onnx_output": check.output_name}


def test_classifier_torchscript_loads_back_and_matches_onnx(classifier_exports: dict) -> None:
    import torch  # noqa: PLC0415

    model_dir = classifier_exports["dir"]
    images = _pixels(5, 32, seed=1)  # not the images the export checked itself on
    expected = _onnx_outputs(model_dir / "model.onnx", images, [classifier_exports["onnx_output"]])
    loaded = torch.jit.load(str(model_dir / EXTRA_EXPORT_FILES["torch"]))
    (probabilities,) = _torch_outputs(loaded, images)
    assert probabilities.shape == (5, len(CLASSES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # the images get different answers, so agreement below is not agreement on a constant
    assert np.ptp(probabilities, axis=0).max() > 1e-4
    assert np.abs(probabilities - expected[0]).max() < 1e-5
    assert classifier_exports["record"]["torch_check"]["images"] == 6
    checked = classifier_exports["record"]["torch_check"]["max_diff"]
    assert set(checked) == {"torch", "pytorchmobile"}


def test_classifier_lite_interpreter_file_loads_back_and_matches_onnx(
    classifier_exports: dict,
) -> None:
    from torch.jit.mobile import _load_for_lite_interpreter  # noqa: PLC0415

    model_dir = classifier_exports["dir"]
    images = _pixels(3, 32, seed=2)
    expected = _onnx_outputs(model_dir / "model.onnx", images, [classifier_exports["onnx_output"]])
    lite = _load_for_lite_interpreter(str(model_dir / EXTRA_EXPORT_FILES["pytorchmobile"]))
    (probabilities,) = _torch_outputs(lite, images)
    assert np.abs(probabilities - expected[0]).max() < 1e-5


def test_classifier_coreml_package_has_the_documented_input_and_output(
    classifier_exports: dict, tmp_path: Path
) -> None:
    mlmodel = _open_coreml(classifier_exports["dir"] / EXTRA_EXPORT_FILES["coreml"], tmp_path)
    spec = mlmodel.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert _feature_shapes(spec.description.input) == {INPUT_NAME: [1, 32, 32, 3]}
    assert [o.name for o in spec.description.output] == ["probabilities"]
    assert json.loads(mlmodel.user_defined_metadata["classes"]) == CLASSES
    # the weights travel inside the package
    weights = list((tmp_path / COREML_PACKAGE).rglob("weight.bin"))
    assert weights and weights[0].stat().st_size > 100_000


def test_only_the_requested_formats_are_written(tmp_path: Path) -> None:
    model = build_classifier(TrainingConfig(job_id="t", image_size=32), 2).model
    export_onnx(model, tmp_path / "model.onnx", 32)
    record = export_extra_formats(
        model,
        tmp_path,
        formats=("onnx", "pytorchmobile"),
        onnx_path=tmp_path / "model.onnx",
        image_size=32,
        input_name=INPUT_NAME,
        onnx_output_names=[check_onnx(model, tmp_path / "model.onnx", _pixels(2, 32)).output_name],
        output_names=["probabilities"],
        classes=["a", "b"],
        check_images=_pixels(2, 32),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.ptl"]
    assert list(record["torch_check"]["max_diff"]) == ["pytorchmobile"]


def test_detector_exports_load_back_with_boxes_and_scores(tmp_path: Path) -> None:
    import torch  # noqa: PLC0415

    size = 64
    detector = build_detector(DetectionConfig(job_id="t", image_size=size), len(CLASSES))
    export_model = build_export_model(detector, size)
    onnx_path = tmp_path / "model.onnx"
    export_onnx(export_model, onnx_path, size, DETECTION_INPUT)
    export_extra_formats(
        export_model,
        tmp_path,
        formats=("onnx", "coreml", "torch"),
        onnx_path=onnx_path,
        image_size=size,
        input_name=DETECTION_INPUT,
        onnx_output_names=["boxes", "scores"],
        output_names=["boxes", "scores"],
        classes=CLASSES,
        check_images=_pixels(2, size),
    )
    images = _pixels(2, size, seed=3)
    want_boxes, want_scores = _onnx_outputs(onnx_path, images, ["boxes", "scores"])
    boxes, scores = _torch_outputs(torch.jit.load(str(tmp_path / "model.pt")), images)
    anchors = anchor_count(size)
    assert boxes.shape == (2, anchors, 4) and scores.shape == (2, anchors, len(CLASSES))
    assert np.abs(scores - want_scores).max() < 1e-4
    assert (np.abs(boxes - want_boxes) / np.maximum(1.0, np.abs(want_boxes))).max() < 1e-4

    mlmodel = _open_coreml(tmp_path / EXTRA_EXPORT_FILES["coreml"], tmp_path / "unzipped")
    spec = mlmodel.get_spec()
    assert _feature_shapes(spec.description.input) == {DETECTION_INPUT: [1, size, size, 3]}
    assert [o.name for o in spec.description.output] == ["boxes", "scores"]


def test_a_runtime_that_disagrees_with_onnx_fails_the_export() -> None:
    expected = [np.zeros((2, 3), np.float32)]
    close = [np.full((2, 3), 1e-6, np.float32)]
    checked = _compare("torch", close, expected, ["probabilities"], 32)
    assert checked == {"probabilities": pytest.approx(1e-6)}
    with pytest.raises(ExportCheckError, match=r"output probabilities differs from ONNX Runtime"):
        _compare("torch", [np.full((2, 3), 0.01, np.float32)], expected, ["probabilities"], 32)
    with pytest.raises(ExportCheckError, match=r"has shape \(2, 2\), ONNX has \(2, 3\)"):
        _compare("pytorchmobile", [np.zeros((2, 2), np.float32)], expected, ["probabilities"], 32)


def test_box_corners_are_compared_relative_to_the_box_size() -> None:
    """A 2000-px box (an untrained detector's) may be off by 0.5 px; a 10-px one may not."""
    big = np.array([[[-1000.0, -1000.0, 1000.0, 1000.0]]], np.float32)
    off = big + np.float32(0.5)
    checked = _compare("torch", [off], [big], ["boxes"], 64)
    assert checked["boxes"] == pytest.approx(0.5 / 1000)
    small = np.array([[[10.0, 10.0, 20.0, 20.0]]], np.float32)
    with pytest.raises(
        ExportCheckError, match=r"output boxes .* of the box's size \(limit 0.001\)"
    ):
        _compare("torch", [small + np.float32(0.5)], [small], ["boxes"], 64)


def test_torch_and_coremltools_are_imported_only_when_a_format_needs_them() -> None:
    """A job that asks for none of these formats never loads them (seconds, and memory)."""
    probe = (
        "import sys, trainer.export; "
        "print(sorted(m for m in ('torch', 'coremltools', 'onnx2torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": ".:../jobkit", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
