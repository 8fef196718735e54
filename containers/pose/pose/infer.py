"""mode=infer: a trained model (channel `model`) on one video (channel `video`).

DOWNLOADING → the model and the video are checked → DOWNLOADED → RUNNING → `progress` events
(frames predicted, at most about one a second, the last with done == total) → EXPORTING →
predictions.slp, predictions.analysis.h5, predictions.json, the previews and, last,
trainyard_results.json in the model dir.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobkit.batch import download_channels_from_environment
from jobkit.entrypoint import ensure_writable_directory
from jobkit.errors import ConfigError, DataError
from jobkit.events import ProgressEmitter, Status
from jobkit.paths import JobPaths

from .contract import (
    MODEL_CHANNEL,
    VIDEO_CHANNEL,
    InferConfig,
    check_nodes,
    parse_infer_config,
)
from .export import MODEL_MANIFEST, SLEAP_DIR, SLEAP_ZIP
from .probe import open_video

log = logging.getLogger("pose.infer")

RESULTS_SCHEMA = "trainyard.results/1"
RESULTS_MANIFEST = "trainyard_results.json"
FILES = {
    "slp": "predictions.slp",
    "analysis_h5": "predictions.analysis.h5",
    "json": "predictions.json",
    "preview_video": "preview.mp4",
    "preview_image": "preview.png",
}
PROGRESS_INTERVAL = 1.0  # seconds between progress events


def run_inference_job(
    hyperparameters: dict[str, Any],
    paths: JobPaths,
    emitter: ProgressEmitter,
    environ: Mapping[str, str],
) -> None:
    config = parse_infer_config(hyperparameters)
    log.info("job %s: %s", config.job_id, config)
    emitter.status(Status.DOWNLOADING)
    ensure_writable_directory(paths.model_dir)
    downloaded = download_channels_from_environment(environ, paths)
    if downloaded:
        log.info("downloaded %d input files", downloaded)
    model = read_model_manifest(paths.channel(MODEL_CHANNEL))
    check_nodes(config.nodes, model["skeleton"]["nodes"])
    video_path = find_video(paths.channel(VIDEO_CHANNEL))
    video, info = open_video(video_path)
    frames = frame_indices(config, info["frames"])
    summary = (
        f"video {info['name']}: {info['frames']} frames, {info['width']}x{info['height']}"
        + (f", {info['fps']:g} fps" if info["fps"] else "")
        + f"; predicting {len(frames)} frames with the {model['model_type']} model"
    )
    emitter.status(Status.DOWNLOADED, message=summary)
    with tempfile.TemporaryDirectory(prefix="pose-model-") as scratch:
        run_dirs = sleap_run_dirs(paths.channel(MODEL_CHANNEL), model, Path(scratch))
        predict_video(
            config,
            model=model,
            run_dirs=run_dirs,
            video=video,
            info=info,
            frames=frames,
            out_dir=paths.model_dir,
            emitter=emitter,
        )


def read_model_manifest(model_channel: Path) -> dict[str, Any]:
    path = model_channel / MODEL_MANIFEST
    if not path.is_file():
        raise DataError(f"the model has no {MODEL_MANIFEST}: it is not a trained Trainyard model")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"the model's {MODEL_MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("task") != "pose":
        raise DataError("the model is not a pose model (task is not pose)")
    return manifest


def sleap_run_dirs(model_channel: Path, manifest: dict[str, Any], scratch: Path) -> list[Path]:
    """The sleap-nn run dirs of the model: sleap_model/... as persisted, or unpacked from
    sleap_model.zip when the directory did not travel."""
    relative = manifest.get("sleap_model", {}).get("dirs") or [SLEAP_DIR]
    dirs = [model_channel / d for d in relative]
    if all((d / "best.ckpt").is_file() for d in dirs):
        return dirs
    archive = model_channel / SLEAP_ZIP
    if not archive.is_file():
        raise DataError(f"the model has neither {SLEAP_DIR}/ nor {SLEAP_ZIP}")
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                target = (scratch / member).resolve()
                if not target.is_relative_to(scratch.resolve()):
                    raise DataError(f"{SLEAP_ZIP} holds a path outside the archive: {member}")
            z.extractall(scratch)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{SLEAP_ZIP} is not a readable zip file: {exc}") from None
    dirs = [scratch / d for d in relative]
    missing = [d for d in dirs if not (d / "best.ckpt").is_file()]
    if missing:
        raise DataError(f"{SLEAP_ZIP} has no best.ckpt in {missing[0].relative_to(scratch)}")
    return dirs


def find_video(channel: Path) -> Path:
    files = (
        sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith("."))
        if channel.is_dir()
        else []
    )
    if not files:
        raise DataError("no video was sent: the video channel is empty")
    if len(files) > 1:
        names = ", ".join(p.relative_to(channel).as_posix() for p in files)
        raise DataError(f"send exactly one video; the video channel holds {names}")
    return files[0]


def frame_indices(config: InferConfig, total: int) -> list[int]:
    if config.frame_start >= total:
        raise ConfigError(
            f"hyperparameter frame_start={config.frame_start} is beyond the video's last "
            f"frame ({total} frames, numbered from 0)"
        )
    end = total if config.frame_end is None else min(config.frame_end, total)
    return list(range(config.frame_start, end, config.frame_stride))


class ProgressReporter:
    """Frames predicted → `progress` events: the first batch, then at most one a second, and
    always the final count."""

    def __init__(self, emitter: ProgressEmitter, total: int, interval: float = PROGRESS_INTERVAL):
        self.emitter, self.total, self.interval = emitter, total, interval
        self.last_done = -1
        self.last_time = -math.inf

    def __call__(self, done: int, _total: int = 0) -> None:
        now = time.monotonic()
        done = min(int(done), self.total)
        if done <= self.last_done:
            return
        if done == self.total or now - self.last_time >= self.interval:
            self.emitter.progress(done, self.total, unit="frames")
            self.last_done, self.last_time = done, now

    def finish(self) -> None:
        self(self.total)


def _tracker_config() -> Any:
    from sleap_nn.inference.tracking import TrackerConfig  # noqa: PLC0415

    return TrackerConfig()


def predict_video(
    config: InferConfig,
    *,
    model: dict[str, Any],
    run_dirs: list[Path],
    video: Any,
    info: dict[str, Any],
    frames: list[int],
    out_dir: Path,
    emitter: ProgressEmitter,
) -> dict[str, Any]:
    import sleap_io as sio  # noqa: PLC0415
    from sleap_nn.inference.predictor import Predictor  # noqa: PLC0415

    from .preview import write_preview_image, write_preview_video  # noqa: PLC0415
    from .training import inference_device  # noqa: PLC0415

    device = inference_device()
    max_instances = config.max_instances or model.get("config", {}).get("max_instances")
    emitter.status(
        Status.RUNNING,
        message=f"predicting {len(frames)} frames on {device}"
        + (" with tracking" if config.tracking else ""),
    )
    loaded = time.monotonic()
    predictor = Predictor.from_model_paths(
        [str(d) for d in run_dirs],
        device=device,
        batch_size=config.batch_size,
        peak_threshold=config.peak_threshold,
        max_instances=max_instances,
        tracker_config=_tracker_config() if config.tracking else None,
    )
    load_seconds = time.monotonic() - loaded
    progress = ProgressReporter(emitter, len(frames))
    started = time.monotonic()
    # Every frame in order: no frame list, so the video is read straight through as sleap-nn's
    # own predictor reads it, rather than frame by frame by index.
    whole_video = frames == list(range(info["frames"]))
    labels = predictor.predict(
        video, frames=None if whole_video else frames, make_labels=True, progress_callback=progress
    )
    predict_seconds = time.monotonic() - started
    progress.finish()
    fps = len(frames) / predict_seconds if predict_seconds > 0 else None
    log.info(
        "predicted %d frames in %.2f s (%.1f frames/s; model loaded in %.2f s)",
        len(frames),
        predict_seconds,
        fps or 0.0,
        load_seconds,
    )

    emitter.status(Status.EXPORTING, message="predictions.slp, analysis HDF5, JSON, previews")
    files: dict[str, str] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in [*FILES.values(), RESULTS_MANIFEST]:
        (out_dir / name).unlink(missing_ok=True)  # an earlier attempt's
    sio.save_slp(labels, str(out_dir / FILES["slp"]), verbose=False)
    files["slp"] = FILES["slp"]
    sio.save_analysis_h5(
        labels, str(out_dir / FILES["analysis_h5"]), video=0, labels_path=FILES["slp"]
    )
    files["analysis_h5"] = FILES["analysis_h5"]
    by_frame = {int(lf.frame_idx): lf for lf in labels.labeled_frames}
    document = predictions_document(model, info, frames, by_frame)
    _write_json(out_dir / FILES["json"], document)
    files["json"] = FILES["json"]
    drawing = {
        "frames": frames,
        "by_frame": by_frame,
        "nodes": model["skeleton"]["nodes"],
        "edges": [tuple(e) for e in model["skeleton"]["edges"]],
    }
    if config.preview_video:
        write_preview_video(
            video, **drawing, path=out_dir / FILES["preview_video"], fps=info["fps"]
        )
        files["preview_video"] = FILES["preview_video"]
    if config.preview_image:
        write_preview_image(video, **drawing, path=out_dir / FILES["preview_image"])
        files["preview_image"] = FILES["preview_image"]

    with_instances = sum(1 for f in document["frames"] if f["instances"])
    results = {
        "schema": RESULTS_SCHEMA,
        "task": "pose",
        "files": files,
        "frames": {
            "total": info["frames"],
            "predicted": len(frames),
            "with_instances": with_instances,
        },
        "video": document["video"],
        "fps": None if fps is None else round(fps, 3),
        "model": {"model_type": model.get("model_type"), "backbone": model.get("backbone")},
        "device": device,
        "tracking": config.tracking,
        "timings": {
            "model_load_seconds": round(load_seconds, 3),
            "predict_seconds": round(predict_seconds, 3),
        },
    }
    _write_json(out_dir / RESULTS_MANIFEST, results)  # last: the outputs are complete
    return results


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def predictions_document(
    model: dict[str, Any], info: dict[str, Any], frames: list[int], by_frame: dict[int, Any]
) -> dict[str, Any]:
    """predictions.json: every predicted frame (in order, with or without instances); every
    node of each instance, as [x, y, score] or [null, null, null] when it was not found."""
    nodes = model["skeleton"]["nodes"]
    document_frames = []
    for index in frames:
        lf = by_frame.get(index)
        instances = []
        for instance in [] if lf is None else lf.instances:
            points = instance.numpy(scores=True)
            instances.append(
                {
                    "points": {
                        node: (
                            [_number(points[i, 0]), _number(points[i, 1]), _number(points[i, 2])]
                            if math.isfinite(points[i, 0]) and math.isfinite(points[i, 1])
                            else [None, None, None]
                        )
                        for i, node in enumerate(nodes)
                    },
                    "score": _number(getattr(instance, "score", math.nan)),
                    "track": instance.track.name if instance.track is not None else None,
                }
            )
        document_frames.append({"frame_idx": index, "instances": instances})
    return {
        "video": {k: info[k] for k in ("name", "width", "height", "frames", "fps")},
        "skeleton": model["skeleton"],
        "frames": document_frames,
    }


def _write_json(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content) + "\n")
    os.replace(partial, path)
