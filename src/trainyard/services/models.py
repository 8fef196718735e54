"""Trained models: read, delete, loss plot, exports, prediction; and inference jobs' results."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import JobStatus, JobType, Model, ModelStatus, Task
from ..errors import Conflict, InvalidInput, NotFound
from ..ports import BlobStore, JobStore, Page
from .detection import DEFAULT_MAX_DETECTIONS, DEFAULT_SCORE_THRESHOLD, MAX_DETECTIONS_LIMIT
from .jobs import model_prefix, results_prefix
from .plots import loss_plot_png
from .prediction import Predictor

EXPORT_MEDIA_TYPES = {
    "keras": "application/zip",
    "onnx": "application/octet-stream",
    "tflite": "application/octet-stream",
    "coreml": "application/zip",  # model.mlpackage/ (a directory) zipped
    "torch": "application/octet-stream",  # TorchScript, for torch.jit.load
    "pytorchmobile": "application/octet-stream",  # lite interpreter, for _load_for_lite_interpreter
    "sleap": "application/zip",  # a pose model's sleap-nn model dir(s), for `sleap-nn predict`
}
RESULT_MEDIA_TYPES = {
    "slp": "application/octet-stream",
    "analysis_h5": "application/x-hdf5",
    "json": "application/json",
    "preview_video": "video/mp4",
    "preview_image": "image/png",
}
MAX_TOP_K = 100
DEFAULT_TOP_K = 5
CLASSIFIER_OPTIONS = ("top_k",)
DETECTOR_OPTIONS = ("score_threshold", "max_detections")
PREDICT_OPTIONS = CLASSIFIER_OPTIONS + DETECTOR_OPTIONS


def whole_number_option(value: object, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name}: expected an integer, got {value!r}") from exc
    if not low <= number <= high:
        raise InvalidInput(f"{name}: must be between {low} and {high}")
    return number


def fraction_option(value: object, name: str) -> float:
    try:
        number = float(str(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name}: expected a number, got {value!r}") from exc
    if not (math.isfinite(number) and 0 <= number <= 1):
        raise InvalidInput(f"{name}: must be between 0 and 1")
    return number


def _refuse_options(options: Mapping[str, object], names: tuple[str, ...], model: Model, use: str) -> None:
    """Options meant for another kind of model are refused rather than silently ignored."""
    for name in names:
        if name in options:
            raise InvalidInput(f"{name}: model {model.id} is a {model.task.value} model; use {use}")


@dataclass(frozen=True)
class ExportLocation:
    filename: str
    url: str | None = None
    path: Path | None = None


class ModelService:
    def __init__(
        self, store: JobStore, blobs: BlobStore, predictor: Predictor, presign_seconds: int = 3600
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._predictor = predictor
        self._presign_seconds = presign_seconds

    def get(self, tenant_id: str, model_id: str) -> Model:
        model = self._store.get_model(tenant_id, model_id)
        if model is None:
            raise NotFound(f"model {model_id} not found")
        return model

    def page(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._store.list_models(tenant_id, limit, cursor)

    def delete(self, tenant_id: str, model_id: str) -> None:
        model = self.get(tenant_id, model_id)
        if model.status is ModelStatus.TRAINING:
            raise Conflict(f"model {model_id} is still training; cancel job {model.job_id} first")
        self._store.delete_model(tenant_id, model_id)
        self._predictor.evict(model_id)
        self._blobs.delete_prefix(model_prefix(tenant_id, model_id))

    def plot_loss(self, model: Model) -> str:
        return base64.b64encode(loss_plot_png(self._store.list_epochs(model.job_id))).decode()

    def export_location(self, tenant_id: str, model_id: str, fmt: str) -> ExportLocation:
        """Where a client gets an export: a presigned URL when the blob store has them (S3:
        the bytes never pass through the API function, whose responses are capped at 6 MB),
        else a local file the API streams."""
        model = self.get(tenant_id, model_id)
        if fmt not in EXPORT_MEDIA_TYPES:
            raise NotFound(f"unknown export format {fmt!r}; formats: {', '.join(EXPORT_MEDIA_TYPES)}")
        if model.status is not ModelStatus.READY or fmt not in model.exports:
            raise NotFound(f"model {model_id} has no {fmt} export (exports: {model.exports or 'none'})")
        name = model.manifest["exports"][fmt]
        return self._location(model_prefix(tenant_id, model_id) + name, f"{model_id}-{name}")

    def _location(self, key: str, filename: str) -> ExportLocation:
        url = self._blobs.presigned_get_url(key, self._presign_seconds, filename)
        if url is not None:
            return ExportLocation(filename, url=url)
        return ExportLocation(filename, path=self._blobs.local_path(key))

    # --- inference results --------------------------------------------------------------------

    def results(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        """A finished inference job's results manifest (counts, video, files)."""
        job = self._store.get_job(tenant_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.type is not JobType.INFER:
            raise NotFound(f"job {job_id} is a {job.type.value} job; results belong to inference jobs")
        if job.status is not JobStatus.SUCCEEDED or job.result is None:
            raise Conflict(f"job {job_id} is {job.status.value}; results exist once it has SUCCEEDED")
        return {"job_id": job.id, "model_id": job.model_id, **job.result}

    def result_location(self, tenant_id: str, job_id: str, kind: str) -> ExportLocation:
        files = self.results(tenant_id, job_id)["files"]
        if kind not in files:
            raise NotFound(f"job {job_id} has no {kind!r} result (results: {', '.join(files) or 'none'})")
        return self._location(results_prefix(tenant_id, job_id) + files[kind], f"{job_id}-{files[kind]}")

    # --- prediction ---------------------------------------------------------------------------

    def predict(
        self, tenant_id: str, model_id: str, image: bytes, options: Mapping[str, object]
    ) -> dict[str, Any]:
        """One image through a classifier (`top_k`) or a detector (`score_threshold`,
        `max_detections`, defaulting to what the model's manifest says)."""
        model = self.get(tenant_id, model_id)
        if model.task is Task.POSE:
            raise InvalidInput(
                f"model {model_id} is a pose model: run it on a video with POST /v1/jobs"
                ' {"type": "infer", "task": "pose", "model_id": ...}'
            )
        if model.task is Task.DETECTION:
            _refuse_options(options, CLASSIFIER_OPTIONS, model, "score_threshold and max_detections")
            defaults = model.manifest.get("postprocess", {})
            threshold = fraction_option(
                options.get("score_threshold", defaults.get("score_threshold", DEFAULT_SCORE_THRESHOLD)),
                "score_threshold",
            )
            most = whole_number_option(
                options.get("max_detections", defaults.get("max_detections", DEFAULT_MAX_DETECTIONS)),
                "max_detections",
                1,
                MAX_DETECTIONS_LIMIT,
            )
            return {"model_id": model.id, **self._predictor.detect(model, image, threshold, most)}
        _refuse_options(options, DETECTOR_OPTIONS, model, "top_k")
        top_k = whole_number_option(options.get("top_k", DEFAULT_TOP_K), "top_k", 1, MAX_TOP_K)
        return {"model_id": model.id, "predictions": self._predictor.predict(model, image, top_k)}

    def public(self, model: Model) -> dict[str, Any]:
        view = model.model_dump(
            mode="json",
            include={
                "id",
                "name",
                "description",
                "task",
                "status",
                "job_id",
                "dataset_id",
                "classes",
                "params",
                "metrics",
                "exports",
                "created_at",
            },
        )
        if model.task is Task.POSE and model.manifest:
            view["skeleton"] = model.manifest.get("skeleton")
            view["model_type"] = model.manifest.get("model_type")
        view["plot_loss"] = self.plot_loss(model)
        return view
