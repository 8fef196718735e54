"""Exports made after the checked ONNX file: Core ML, TorchScript and PyTorch Mobile.

- coreml: the Keras model traced as a TensorFlow concrete function and converted by
  coremltools to an ML program (converting a Keras 3 model object fails in coremltools 9).
  An .mlpackage is a directory; it is shipped zipped (`model.mlpackage.zip`, holding
  `model.mlpackage/`) so that every export is one file to store and download.
- torch / pytorchmobile: the ONNX file → PyTorch (onnx2torch) → `torch.jit.trace`, saved as
  TorchScript (`model.pt`) and for the lite interpreter (`model.ptl`). Both are loaded back
  and run on the check images, and must agree with ONNX Runtime, or the job fails.

Every format takes the same input as the ONNX file (float32 NHWC RGB pixels 0..255, see the
manifest's `input`) and gives the same outputs in the same order (docs/job-contract.md).
torch and coremltools are imported here only, when one of these formats is requested.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .errors import ExportCheckError

log = logging.getLogger(__name__)

EXTRA_EXPORT_FILES = {
    "coreml": "model.mlpackage.zip",
    "torch": "model.pt",
    "pytorchmobile": "model.ptl",
}
COREML_PACKAGE = "model.mlpackage"
TORCH_FORMATS = ("torch", "pytorchmobile")
TORCH_CHECK_MAX_IMAGES = 8
# Largest |torch - onnx| allowed for probabilities and scores.
TORCH_CHECK_TOLERANCE = 1e-4
# A detector's `boxes` output: x_min, y_min, x_max, y_max in input pixels. A corner is
# center ± size / 2 with size = exp(regression) × anchor, so float32 differences between the
# runtimes' convolutions grow with the box: they are measured relative to the box's largest
# coordinate (or to the image, for small boxes), with the limit of the ONNX-vs-Keras check.
BOXES_OUTPUT = "boxes"
BOX_RELATIVE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TorchCheck:
    images: int
    # per runtime ("torch", "pytorchmobile") and output, the largest difference to ONNX Runtime
    max_diff: dict[str, dict[str, float]]


def export_extra_formats(
    model: keras.Model,
    model_dir: Path,
    *,
    formats: Sequence[str],
    onnx_path: Path,
    image_size: int,
    input_name: str,
    onnx_output_names: Sequence[str],
    output_names: Sequence[str],
    classes: Sequence[str],
    check_images: np.ndarray,
) -> dict[str, Any]:
    """Write the requested Core ML / TorchScript / lite-interpreter exports into model_dir.

    `onnx_output_names` are the ONNX file's outputs; `output_names` are what Core ML calls
    the same outputs, in the same order. Returns what the manifest records of them:
    `{"torch_check": ...}` when a torch format was made, else nothing."""
    record: dict[str, Any] = {}
    if "coreml" in formats:
        export_coreml(
            model,
            model_dir / EXTRA_EXPORT_FILES["coreml"],
            image_size=image_size,
            input_name=input_name,
            output_names=output_names,
            classes=classes,
        )
    torch_formats = [f for f in TORCH_FORMATS if f in formats]
    if torch_formats:
        check = export_torch(
            onnx_path,
            {f: model_dir / EXTRA_EXPORT_FILES[f] for f in torch_formats},
            output_names=onnx_output_names,
            image_size=image_size,
            check_images=check_images,
        )
        record["torch_check"] = {"images": check.images, "max_diff": check.max_diff}
    return record


def _disable_triton() -> None:
    """Make `import triton` fail (torch then takes its no-triton path) unless it is loaded.

    triton, torch's GPU kernel compiler that the CUDA torch wheel pulls in, crashes the process
    (SIGSEGV in its native library) when it is loaded after TensorFlow, and coremltools and
    torch's tracing tools import it lazily. Nothing here compiles kernels.
    """
    sys.modules.setdefault("triton", None)  # type: ignore[arg-type]


# --- Core ML ------------------------------------------------------------------------------


def export_coreml(
    model: keras.Model,
    zip_path: Path,
    *,
    image_size: int,
    input_name: str,
    output_names: Sequence[str],
    classes: Sequence[str],
) -> None:
    """An ML program with one float32 multi-array input (1, size, size, 3) named like the
    ONNX input, and the outputs named `output_names`; the class names go in its metadata."""
    _disable_triton()
    # Import-time warnings that TF 2.21 and torch 2.14 are untested: the conversion is
    # checked by the tests (docs/job-contract.md), and the job log stays readable.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    # coremltools draws a progress bar per conversion pass into the job log; tqdm reads
    # this when it is first imported.
    os.environ.setdefault("TQDM_DISABLE", "1")
    import coremltools as ct  # noqa: PLC0415 - heavy, and only this export needs it

    spec = tf.TensorSpec((1, image_size, image_size, 3), tf.float32, name=input_name)

    def forward(images: tf.Tensor) -> Any:
        outputs = model(images, training=False)
        if isinstance(outputs, dict):  # the detector's export model: a fixed output order
            return tuple(outputs[name] for name in output_names)
        return outputs

    concrete = tf.function(forward).get_concrete_function(spec)
    with _quiet_coremltools():
        mlmodel = ct.convert(
            [concrete],
            source="tensorflow",
            convert_to="mlprogram",
            inputs=[ct.TensorType(name=input_name, shape=spec.shape.as_list())],
            # Predictions cannot be checked on Linux (no Core ML runtime), so keep float32
            # rather than the default float16, which would change the numbers unchecked.
            compute_precision=ct.precision.FLOAT32,
        )
        converted_outputs = [output.name for output in mlmodel.get_spec().description.output]
        if len(converted_outputs) != len(output_names):
            raise ExportCheckError(
                f"Core ML export has outputs {converted_outputs}, expected {list(output_names)}"
            )
        for old, new in zip(converted_outputs, output_names, strict=True):
            if old != new:
                mlmodel = _renamed(ct, mlmodel, old, new)
    mlmodel.short_description = "Trainyard model: float32 NHWC RGB pixels 0..255 in"
    mlmodel.user_defined_metadata["classes"] = json.dumps(list(classes))
    with tempfile.TemporaryDirectory(dir=zip_path.parent) as scratch:
        package = Path(scratch) / COREML_PACKAGE
        mlmodel.save(str(package))
        zip_directory(package, zip_path)


def _renamed(ct: Any, mlmodel: Any, old: str, new: str) -> Any:
    spec = mlmodel.get_spec()
    ct.utils.rename_feature(spec, old, new)
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


@contextlib.contextmanager
def _quiet_coremltools() -> Iterator[None]:
    # coremltools warns about TensorFlow ops and deprecated APIs while converting; its
    # failures still raise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def zip_directory(directory: Path, zip_path: Path) -> None:
    """`directory` and everything in it, under its own name, into zip_path (written under a
    temporary name first, so a half-written zip never sits in the model dir)."""
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            archive.write(path, path.relative_to(directory.parent).as_posix())
    partial.replace(zip_path)


# --- TorchScript and the lite interpreter ---------------------------------------------------


def export_torch(
    onnx_path: Path,
    destinations: dict[str, Path],
    *,
    output_names: Sequence[str],
    image_size: int,
    check_images: np.ndarray,
) -> TorchCheck:
    """Convert the ONNX file to PyTorch, trace it, save each requested format (`torch`:
    TorchScript, `pytorchmobile`: lite interpreter), load each back and check it against
    ONNX Runtime on the check images."""
    _disable_triton()
    import onnx2torch  # noqa: PLC0415 - imports torch: only these exports need it
    import onnxruntime  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from torch.jit.mobile import _load_for_lite_interpreter  # noqa: PLC0415

    batch = check_images[:TORCH_CHECK_MAX_IMAGES].astype(np.float32)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_input = session.get_inputs()[0].name
    expected = session.run(list(output_names), {onnx_input: batch})

    max_diff: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():
        # The tracer warns about shapes read as Python values (fixed here: one image size),
        # and torch 2.14 about TorchScript's deprecation in favour of torch.export, whose
        # files neither the lite interpreter nor LibTorch apps load.
        warnings.simplefilter("ignore")
        module = onnx2torch.convert(str(onnx_path)).eval()
        with torch.no_grad():
            traced = torch.jit.trace(module, torch.from_numpy(batch[:1]), check_trace=False)
        traced = torch.jit.freeze(traced.eval())
        if "torch" in destinations:
            torch.jit.save(traced, str(destinations["torch"]))
            loaded = torch.jit.load(str(destinations["torch"]), map_location="cpu")
            max_diff["torch"] = _compare(
                "torch", _run_torch(loaded, batch), expected, output_names, image_size
            )
        if "pytorchmobile" in destinations:
            # Saved as traced: optimize_for_mobile needs XNNPACK, which the CUDA wheel lacks.
            traced._save_for_lite_interpreter(str(destinations["pytorchmobile"]))
            lite = _load_for_lite_interpreter(str(destinations["pytorchmobile"]))
            max_diff["pytorchmobile"] = _compare(
                "pytorchmobile", _run_torch(lite, batch), expected, output_names, image_size
            )
    return TorchCheck(len(batch), max_diff)


def _run_torch(module: Any, batch: np.ndarray) -> list[np.ndarray]:
    """The module's outputs for every image, run one at a time: the trace fixes the batch
    dimension at 1 wherever the ONNX graph reshapes by its own shape (the detector does)."""
    import torch  # noqa: PLC0415

    per_image: list[tuple[np.ndarray, ...]] = []
    with torch.no_grad():
        for image in batch:
            outputs = module(torch.from_numpy(image[np.newaxis]))
            if isinstance(outputs, torch.Tensor):
                outputs = (outputs,)
            per_image.append(tuple(output.detach().cpu().numpy() for output in outputs))
    return [np.concatenate(arrays) for arrays in zip(*per_image, strict=True)]


def _compare(
    fmt: str,
    actual: list[np.ndarray],
    expected: list[np.ndarray],
    output_names: Sequence[str],
    image_size: int,
) -> dict[str, float]:
    """Each output's largest difference to ONNX Runtime; an ExportCheckError past its limit."""
    if len(actual) != len(expected):
        raise ExportCheckError(
            f"{fmt} export gives {len(actual)} outputs, ONNX gives {len(expected)} "
            f"({', '.join(output_names)})"
        )
    differences: dict[str, float] = {}
    for name, got, want in zip(output_names, actual, expected, strict=True):
        if got.shape != want.shape:
            raise ExportCheckError(
                f"{fmt} export output {name} has shape {got.shape}, ONNX has {want.shape}"
            )
        error = np.abs(got - want)
        limit, unit = TORCH_CHECK_TOLERANCE, ""
        if name == BOXES_OUTPUT:
            error = error / np.maximum(np.abs(want).max(axis=-1, keepdims=True), image_size)
            limit, unit = BOX_RELATIVE_TOLERANCE, " of the box's size"
        diff = float(np.max(error))
        if not np.isfinite(diff) or diff >= limit:
            raise ExportCheckError(
                f"{fmt} export check failed: output {name} differs from ONNX Runtime by up "
                f"to {diff:.3g}{unit} (limit {limit:g}) on {len(want)} images"
            )
        differences[name] = diff
    log.info(
        "%s export check on %d images: differences to ONNX %s", fmt, len(expected[0]), differences
    )
    return differences
