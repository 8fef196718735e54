"""The model dir's exports: model.onnx (sleap-nn's exporter), checked with ONNX Runtime
against the same network in PyTorch; sleap_model.zip; and trainyard_model.json, last.

The ONNX graph is sleap-nn's export wrapper: uint8 frames in (batch, channels, height, width),
normalisation, the network and peak finding inside; see README.md for its outputs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jobkit.errors import JobError

log = logging.getLogger("pose.export")

MODEL_MANIFEST = "trainyard_model.json"
ONNX_FILE = "model.onnx"
SLEAP_DIR = "sleap_model"
SLEAP_ZIP = "sleap_model.zip"
# Baked into the exported graph (sleap-nn export's defaults, passed explicitly so that the
# PyTorch side of the check is built the same way).
EXPORT_MAX_INSTANCES = 20
EXPORT_MAX_PEAKS_PER_NODE = 20
EXPORT_PEAK_THRESHOLD = 0.2
N_LINE_POINTS = 10
MAX_EDGE_LENGTH_RATIO = 0.25
DIST_PENALTY_WEIGHT = 1.0
# ONNX Runtime must agree with PyTorch within |a - b| <= ATOL + RTOL * |b| on every output.
# Both run the same float32 graph; their kernels differ only in summation order, which moves
# values by ~1e-6 relative. 1e-3 is far above that and far below what matters: a thousandth
# of confidence, 0.1 px at a coordinate of 100 px. A peak that moved to another pixel (the
# failure this is meant to catch) differs by a whole output-stride cell.
CHECK_ATOL = 1e-3
CHECK_RTOL = 1e-3
CHECK_FRAMES = 8


def export_onnx(
    run_dirs: Sequence[Path], model_dir: Path, *, height: int, width: int, max_instances: int
) -> Path:
    """sleap-nn's ONNX export of the trained model(s) into the model dir: model.onnx,
    export_metadata.json and the training config(s), which make the model dir a sleap-nn
    export dir as well (`sleap-nn predict --export_dir <model dir> --runtime onnx`)."""
    from sleap_nn.export.cli import export  # noqa: PLC0415

    args = [
        *(str(d) for d in run_dirs),
        "--output",
        str(model_dir),
        "--format",
        "onnx",
        "--input-height",
        str(height),
        "--input-width",
        str(width),
        "--max-instances",
        str(max_instances),
        "--max-peaks-per-node",
        str(EXPORT_MAX_PEAKS_PER_NODE),
        "--peak-threshold",
        str(EXPORT_PEAK_THRESHOLD),
        "--device",
        "cpu",
    ]
    export.main(args, standalone_mode=False)
    path = model_dir / ONNX_FILE
    if not path.is_file():
        raise JobError("the ONNX export wrote no model.onnx")
    return path


def _torch_wrapper(run_dirs: Sequence[Path], model_type: str, max_instances: int) -> Any:
    """The PyTorch module sleap-nn's exporter traced, rebuilt from best.ckpt."""
    from sleap_nn.export import utils as u  # noqa: PLC0415
    from sleap_nn.export.cli import _load_lightning_model  # noqa: PLC0415
    from sleap_nn.export.wrappers import (  # noqa: PLC0415
        BottomUpONNXWrapper,
        SingleInstanceONNXWrapper,
        TopDownONNXWrapper,
    )

    def network(run_dir: Path) -> tuple[Any, Any, str]:
        cfg = u.load_training_config(run_dir)
        kind = u.resolve_model_type(cfg)
        model = _load_lightning_model(
            model_type=kind,
            backbone_type=u.resolve_backbone_type(cfg),
            cfg=cfg,
            ckpt_path=run_dir / "best.ckpt",
            device="cpu",
        ).model
        return model.eval(), cfg, kind

    if model_type == "topdown":
        centroid, centroid_cfg, _ = network(run_dirs[0])
        instance, instance_cfg, _ = network(run_dirs[1])
        nodes = u.resolve_node_names(instance_cfg, "centered_instance")
        wrapper = TopDownONNXWrapper(
            centroid_model=centroid,
            instance_model=instance,
            max_instances=max_instances,
            crop_size=u.resolve_crop_size(instance_cfg),
            centroid_output_stride=u.resolve_output_stride(centroid_cfg, "centroid"),
            instance_output_stride=u.resolve_output_stride(instance_cfg, "centered_instance"),
            centroid_input_scale=u.resolve_input_scale(centroid_cfg),
            instance_input_scale=u.resolve_input_scale(instance_cfg),
            n_nodes=len(nodes),
            centroid_peak_threshold=EXPORT_PEAK_THRESHOLD,
            instance_peak_threshold=EXPORT_PEAK_THRESHOLD,
        )
    else:
        model, cfg, kind = network(run_dirs[0])
        stride = u.resolve_output_stride(cfg, kind)
        if kind == "bottomup":
            nodes = u.resolve_node_names(cfg, kind)
            wrapper = BottomUpONNXWrapper(
                model,
                skeleton_edges=u.resolve_edge_inds(cfg, nodes),
                n_nodes=len(nodes),
                max_peaks_per_node=EXPORT_MAX_PEAKS_PER_NODE,
                n_line_points=N_LINE_POINTS,
                cms_output_stride=stride,
                pafs_output_stride=u.resolve_pafs_output_stride(cfg),
                max_edge_length_ratio=MAX_EDGE_LENGTH_RATIO,
                dist_penalty_weight=DIST_PENALTY_WEIGHT,
                input_scale=u.resolve_input_scale(cfg),
                peak_threshold=EXPORT_PEAK_THRESHOLD,
            )
        else:
            wrapper = SingleInstanceONNXWrapper(
                model,
                output_stride=stride,
                input_scale=u.resolve_input_scale(cfg),
                peak_threshold=EXPORT_PEAK_THRESHOLD,
            )
    return wrapper.eval()


def model_frames(labels: Any, *, height: int, width: int, channels: int, limit: int) -> np.ndarray:
    """Up to `limit` frames of `labels` as the exported graph takes them: uint8
    (n, channels, height, width), zero-padded at the bottom and right as sleap-nn pads."""
    frames = []
    for lf in labels.labeled_frames[:limit]:
        image = np.asarray(lf.image)
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[-1] != channels:
            image = (
                np.round(image.mean(axis=-1, keepdims=True)).astype(np.uint8)
                if channels == 1
                else np.repeat(image[..., :1], channels, axis=-1)
            )
        padded = np.zeros((height, width, channels), np.uint8)
        h, w = min(height, image.shape[0]), min(width, image.shape[1])
        padded[:h, :w] = image[:h, :w]
        frames.append(padded.transpose(2, 0, 1))
    return np.stack(frames)


# Outputs that are only meaningful where a mask output says so: slots past the detected peaks
# or instances hold whatever top-k left there (ties among fill values, in any order).
VALID_WHERE = {
    "peaks": ("peak_mask", "instance_valid"),
    "peak_vals": ("peak_mask", "instance_valid"),
    "line_scores": ("candidate_mask",),
    "centroids": ("instance_valid",),
    "centroid_vals": ("instance_valid",),
}


def compare_output(
    name: str, expected: dict[str, np.ndarray], got: dict[str, np.ndarray]
) -> tuple[float, bool]:
    """(largest difference, within tolerance) of one output, over its valid entries."""
    reference, value = expected[name], got[name]
    if reference.shape != value.shape:
        return float("inf"), False
    if reference.dtype == bool or not np.issubdtype(reference.dtype, np.floating):
        same = bool(np.array_equal(reference, value))
        return (0.0 if same else 1.0), same
    valid = np.ones(reference.shape, bool)
    for mask_name in VALID_WHERE.get(name, ()):
        if mask_name in expected:
            mask = expected[mask_name].astype(bool) & got[mask_name].astype(bool)
            while mask.ndim < reference.ndim:
                mask = mask[..., None]
            valid = np.broadcast_to(mask, reference.shape)
            break
    reference, value = reference[valid], value[valid]
    same = bool(np.allclose(value, reference, atol=CHECK_ATOL, rtol=CHECK_RTOL, equal_nan=True))
    both = np.isfinite(reference) & np.isfinite(value)
    diff = float(np.abs(reference[both] - value[both]).max()) if both.any() else 0.0
    return diff, same


def check_onnx(
    onnx_path: Path,
    run_dirs: Sequence[Path],
    model_type: str,
    frames: np.ndarray,
    *,
    max_instances: int,
) -> dict[str, Any]:
    """Run the exported graph with ONNX Runtime and the same network with PyTorch on `frames`;
    fail the job when any output differs beyond the tolerance above."""
    import onnxruntime as ort  # noqa: PLC0415
    import torch  # noqa: PLC0415

    wrapper = _torch_wrapper(run_dirs, model_type, max_instances)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    worst: dict[str, float] = {}
    for start in range(0, len(frames), 4):
        batch = frames[start : start + 4]
        got = dict(zip(output_names, session.run(None, {input_name: batch}), strict=True))
        with torch.no_grad():
            expected = {
                k: v.detach().cpu().numpy() for k, v in wrapper(torch.from_numpy(batch)).items()
            }
        for name in output_names:
            diff, same = compare_output(name, expected, got)
            worst[name] = max(worst.get(name, 0.0), diff)
            if not same:
                raise JobError(
                    f"the ONNX export disagrees with the PyTorch model on output {name} "
                    f"(largest difference {diff:.3g}, tolerance {CHECK_ATOL} + "
                    f"{CHECK_RTOL} x value); the model was not exported"
                )
    log.info("ONNX check on %d frames: largest differences %s", len(frames), worst)
    return {
        "frames": len(frames),
        "atol": CHECK_ATOL,
        "rtol": CHECK_RTOL,
        "max_abs_diff": worst,
        "outputs": output_names,
        "input": input_name,
    }


def zip_sleap_model(model_dir: Path) -> Path:
    """sleap_model.zip: sleap_model/ as a user unpacks it for `sleap-nn predict`."""
    target = model_dir / SLEAP_ZIP
    target.unlink(missing_ok=True)
    archive = shutil.make_archive(
        str(model_dir / "sleap_model"), "zip", root_dir=model_dir, base_dir=SLEAP_DIR
    )
    return Path(archive)


def write_manifest(model_dir: Path, manifest: dict[str, Any]) -> Path:
    """trainyard_model.json, written last and atomically: its presence says the model dir
    is complete."""
    path = model_dir / MODEL_MANIFEST
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, path)
    return path
