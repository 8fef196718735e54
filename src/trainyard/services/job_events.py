"""Applies what the platform reports about a job: the container's progress events and the
worker's exit. This is the body of the `job_events` function on AWS; locally the launcher
publishes the same events on the in-process bus. Events arrive at least once and in any
order: status changes are conditional writes and epochs are keyed, so each applies once."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..domain import EpochMetrics, Job, JobStatus, JobType, ModelStatus
from ..ports import BlobStore, JobStore
from .jobs import JobService

log = logging.getLogger(__name__)

PROGRESS_SCHEMA = "trainyard.job-progress/1"
MODEL_MANIFEST = "trainyard_model.json"
RESULTS_MANIFEST = "trainyard_results.json"
CONTAINER_STATUSES = {
    JobStatus.DOWNLOADING,
    JobStatus.DOWNLOADED,
    JobStatus.RUNNING,
    JobStatus.EXPORTING,
}


class ProgressEvent(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on the first event, not at cold start

    schema_: Literal["trainyard.job-progress/1"]
    event_id: str
    job_id: str
    kind: Literal["status", "epoch", "progress", "failed"]
    status: JobStatus | None = None
    error: str | None = None
    epoch: int | None = None  # the figures of an epoch event are read into EpochMetrics
    epochs: int | None = None
    done: int | None = None  # a progress event: work done of total, in unit (frames)
    total: int | None = None
    unit: str | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ProgressEvent:
        return cls.model_validate({**raw, "schema_": raw.get("schema")})


class WorkerExitEvent(BaseModel):
    model_config = ConfigDict(defer_build=True)

    job_id: str
    succeeded: bool
    reason: str | None = None
    model_prefix: str


class JobEventsService:
    def __init__(self, store: JobStore, blobs: BlobStore, jobs: JobService) -> None:
        self._store = store
        self._blobs = blobs
        self._jobs = jobs

    def handle_progress(self, raw: dict[str, Any]) -> None:
        try:
            event = ProgressEvent.parse(raw)
        except ValidationError as exc:
            log.warning("dropping malformed progress event %s: %s", raw.get("event_id"), exc)
            return
        if self._store.get_job_any_tenant(event.job_id) is None:
            log.warning("progress event %s for unknown job", event.event_id)
            return
        if event.kind == "status" and event.status in CONTAINER_STATUSES:
            self._jobs.transition(event.job_id, event.status)
        elif event.kind == "epoch" and event.epoch is not None and event.epoch >= 1:
            figures = {name: raw.get(name) for name in EpochMetrics.model_fields}
            try:
                metrics = EpochMetrics.model_validate({**figures, "job_id": event.job_id})
            except ValidationError as exc:
                log.warning("dropping malformed epoch event %s: %s", event.event_id, exc)
                return
            self._store.record_epoch(metrics, event.epochs or event.epoch)
        elif event.kind == "progress" and event.done is not None and event.done >= 0:
            self._store.record_progress(event.job_id, event.done, event.total, event.unit or "items")
        elif event.kind == "failed":
            self._jobs.transition(event.job_id, JobStatus.FAILED, error=event.error or "failed")
        else:
            log.warning("ignoring progress event %s", event.event_id)

    def handle_worker_exit(self, raw: dict[str, Any]) -> None:
        event = WorkerExitEvent.model_validate(raw)
        job = self._store.get_job_any_tenant(event.job_id)
        if job is None or job.status.is_terminal:
            return
        if not event.succeeded:
            self._jobs.transition(job.id, JobStatus.FAILED, error=event.reason or "worker failed")
            return
        if job.type is JobType.INFER:
            self._settle_inference(job, event.model_prefix)
            return
        model = self._store.get_model(job.tenant_id, job.model_id)
        try:
            manifest, persisted = self._read_manifest(event.model_prefix, MODEL_MANIFEST, "exports")
            exports = list(persisted)
        except Exception as exc:
            self._jobs.transition(job.id, JobStatus.FAILED, error=f"model artifacts unreadable: {exc}")
            return
        if model is not None:
            self._store.update_model(
                model.model_copy(
                    update={
                        "status": ModelStatus.READY,
                        "classes": list(manifest["classes"]),
                        "exports": exports,
                        "metrics": dict(manifest.get("metrics", {})),
                        "manifest": manifest,
                    }
                )
            )
        if self._jobs.transition(job.id, JobStatus.SUCCEEDED) is None and model is not None:
            # cancelled in the meantime: the cancellation stands, the model is not served
            self._store.update_model(model.model_copy(update={"status": ModelStatus.FAILED}))

    def _read_manifest(self, prefix: str, name: str, listing: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The manifest a container wrote last under `prefix`, and of the files its `listing`
        names (kind → file name) those that were persisted."""
        manifest = json.loads(self._blobs.get_bytes(f"{prefix}{name}"))
        persisted = {
            kind: file
            for kind, file in dict(manifest[listing]).items()
            if self._blobs.exists(f"{prefix}{file}")
        }
        return manifest, persisted

    def _settle_inference(self, job: Job, results_prefix: str) -> None:
        """An inference job's outputs are its result: the manifest the container wrote last,
        with the files it names that were persisted."""
        try:
            manifest, files = self._read_manifest(results_prefix, RESULTS_MANIFEST, "files")
        except Exception as exc:
            self._jobs.transition(job.id, JobStatus.FAILED, error=f"results unreadable: {exc}")
            return
        self._jobs.transition(job.id, JobStatus.SUCCEEDED, result={**manifest, "files": files})
