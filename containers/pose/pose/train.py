"""mode=train: DOWNLOADING → the training channel → DOWNLOADED → RUNNING → an `epoch` event
per epoch → EXPORTING (model.onnx checked, sleap_model.zip) → trainyard_model.json, last."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from jobkit.batch import download_channels_from_environment
from jobkit.entrypoint import ensure_writable_directory
from jobkit.errors import ConfigError
from jobkit.events import ProgressEmitter, Status
from jobkit.paths import JobPaths

from .contract import TRAINING_CHANNEL, TrainConfig, parse_train_config, with_resolved_seed
from .dataset import load_training_data
from .export import (
    EXPORT_MAX_INSTANCES,
    ONNX_FILE,
    SLEAP_DIR,
    SLEAP_ZIP,
    check_onnx,
    export_onnx,
    model_frames,
    write_manifest,
    zip_sleap_model,
)

log = logging.getLogger("pose.train")

MODEL_SCHEMA = "trainyard.model/1"


def run_training_job(
    hyperparameters: dict[str, Any],
    paths: JobPaths,
    emitter: ProgressEmitter,
    environ: Mapping[str, str],
) -> None:
    given = parse_train_config(hyperparameters)
    config = with_resolved_seed(given)
    if given.seed is None:
        log.info("no seed given: using seed %d (set it to reproduce this run)", config.seed)
    train_model(config, paths, emitter, environ)


def train_model(
    config: TrainConfig, paths: JobPaths, emitter: ProgressEmitter, environ: Mapping[str, str]
) -> dict[str, Any]:
    if config.seed is None:
        raise ValueError("train_model needs a resolved seed (contract.with_resolved_seed)")
    log.info("job %s: %s", config.job_id, config)
    emitter.status(Status.DOWNLOADING)
    ensure_writable_directory(paths.model_dir)
    downloaded = download_channels_from_environment(environ, paths)
    if downloaded:
        log.info("downloaded %d input files", downloaded)
    data = load_training_data(
        paths.channel(TRAINING_CHANNEL),
        validation_fraction=config.validation_fraction,
        seed=config.seed,
        model_type=config.model_type,
    )
    nodes = data.skeleton["nodes"]
    if config.anchor_part is not None and config.anchor_part not in nodes:
        raise ConfigError(
            f"hyperparameter anchor_part={config.anchor_part!r} is not a node of the "
            f"skeleton: must be one of {', '.join(nodes)}"
        )
    log.info("dataset: %s", data.summary)
    if data.validation is None:
        log.warning("validation_fraction is 0: val_loss and val_mean_pixel_error will be null")
    emitter.status(Status.DOWNLOADED, message=data.summary)

    # sleap-nn and torch are imported only now (about 5 s).
    from .evaluation import validation_pixel_error  # noqa: PLC0415
    from .training import inference_device, model_input, train_pose_model  # noqa: PLC0415

    stages = "centroid + centered_instance" if config.model_type == "topdown" else ""
    emitter.status(
        Status.RUNNING,
        message=f"training {config.model_type} {stages} ({config.backbone}) for "
        f"{config.epochs} epochs".replace("  ", " "),
    )
    sleap_dir = paths.model_dir / SLEAP_DIR
    if sleap_dir.exists():
        shutil.rmtree(sleap_dir)  # a previous attempt's, in the same model dir
    started = time.monotonic()
    result = train_pose_model(
        config,
        train=data.train,
        validation=data.validation,
        labels_path=data.labels_file,
        nodes=nodes,
        sleap_dir=sleap_dir,
        on_epoch=lambda metrics: emitter.epoch(**asdict(metrics)),
    )
    training_seconds = time.monotonic() - started

    emitter.status(Status.EXPORTING, message="sleap-nn model, ONNX")
    device = inference_device()
    val_error = None
    if data.validation is not None:
        val_error, _ = validation_pixel_error(
            result.run_dirs, data.validation, device=device, max_instances=config.max_instances
        )
        log.info("validation: mean keypoint error %s px", val_error)
    model_in = model_input(result)
    max_instances = config.max_instances or EXPORT_MAX_INSTANCES
    onnx_path = export_onnx(
        result.run_dirs,
        paths.model_dir,
        height=model_in["height"],
        width=model_in["width"],
        max_instances=max_instances,
    )
    check_set = data.validation if data.validation is not None else data.train
    frames = model_frames(check_set, limit=8, **model_in)
    onnx_check = check_onnx(
        onnx_path, result.run_dirs, config.model_type, frames, max_instances=max_instances
    )
    zip_sleap_model(paths.model_dir)

    final = result.final
    manifest = {
        "schema": MODEL_SCHEMA,
        "task": "pose",
        "model_type": config.model_type,
        "backbone": config.backbone,
        "classes": nodes,
        "skeleton": data.skeleton,
        "exports": {"sleap": SLEAP_ZIP, "onnx": ONNX_FILE},
        "metrics": {
            "loss": None if final is None else final.loss,
            "val_loss": None if final is None else final.val_loss,
            "val_mean_pixel_error": val_error,
        },
        "input": {
            **model_in,
            "name": onnx_check["input"],
            "dtype": "uint8",
            "layout": "NCHW",
            "range": [0, 255],
        },
        "output": {"names": onnx_check["outputs"], "kind": "keypoints"},
        "onnx_check": {k: onnx_check[k] for k in ("frames", "atol", "rtol", "max_abs_diff")},
        "config": config.effective(),
        "frames": {
            "train": len(data.train),
            "val": 0 if data.validation is None else len(data.validation),
        },
        "sleap_model": {
            "dirs": [d.relative_to(paths.model_dir).as_posix() for d in result.run_dirs],
            "stages": [s.stage for s in result.stages],
        },
        "training_seconds": round(training_seconds, 3),
    }
    write_manifest(paths.model_dir, manifest)
    log.info("model written to %s", paths.model_dir)
    return manifest
