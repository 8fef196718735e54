"""Trained models: read, delete, loss plot, exports."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import Model, ModelStatus
from ..errors import Conflict, NotFound
from ..ports import BlobStore, JobStore, Page
from .jobs import model_prefix
from .plots import loss_plot_png
from .prediction import Predictor

EXPORT_MEDIA_TYPES = {
    "keras": "application/zip",
    "onnx": "application/octet-stream",
    "tflite": "application/octet-stream",
}


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
        key = model_prefix(tenant_id, model_id) + model.manifest["exports"][fmt]
        filename = f"{model_id}-{model.manifest['exports'][fmt]}"
        url = self._blobs.presigned_get_url(key, self._presign_seconds, filename)
        if url is not None:
            return ExportLocation(filename, url=url)
        return ExportLocation(filename, path=self._blobs.local_path(key))

    def predict(self, tenant_id: str, model_id: str, image: bytes, top_k: int) -> dict[str, Any]:
        model = self.get(tenant_id, model_id)
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
        view["plot_loss"] = self.plot_loss(model)
        return view
