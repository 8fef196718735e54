"""Training jobs: create (validate, record, launch), cancel, read. Every status change goes
through `JobService.transition`, a conditional write that publishes "Job Status Changed"
only when it applied."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain import (
    EpochMetrics,
    Image,
    Job,
    JobStatus,
    JobType,
    Model,
    ModelStatus,
    Task,
    new_id,
)
from ..errors import Conflict, InvalidInput, NotFound
from ..params import ClassifierParams, normalise_exports, to_hyperparameters
from ..ports import ChannelFile, EventBus, JobLauncher, JobStore, LaunchSpec, Page

log = logging.getLogger(__name__)

STATUS_CHANGED = "Job Status Changed"


class TrainJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["train"]
    task: Literal["classification"] = "classification"
    dataset_id: str = Field(min_length=1, max_length=100)
    model_name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    params: ClassifierParams = Field(default_factory=ClassifierParams)
    exports: list[str] | None = Field(None, max_length=10)
    webhook_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s]+$")


def idempotent_ids(tenant_id: str, idempotency_key: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{tenant_id}\n{idempotency_key}".encode()).hexdigest()
    return f"job_{digest[:16]}", f"mdl_{digest[16:32]}"


def model_prefix(tenant_id: str, model_id: str) -> str:
    return f"tenants/{tenant_id}/models/{model_id}/"


class JobService:
    def __init__(self, store: JobStore, launcher: JobLauncher, bus: EventBus) -> None:
        self._store = store
        self._launcher = launcher
        self._bus = bus

    def create_training_job(
        self, tenant_id: str, request: TrainJobRequest, idempotency_key: str | None = None
    ) -> Job:
        """Record and launch a job. With an idempotency key the ids derive from (tenant, key):
        a retried request finds the job the first one recorded, and the launch, whose platform
        name derives from the job id, cannot start a second run."""
        fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        if idempotency_key is not None:
            job_id, model_id = idempotent_ids(tenant_id, idempotency_key)
            existing = self._store.get_job(tenant_id, job_id)
            if existing is not None:
                return self._replay(existing, fingerprint, request)
        else:
            job_id, model_id = new_id("job"), new_id("mdl")
        if self._store.get_dataset(tenant_id, request.dataset_id) is None:
            raise NotFound(f"dataset {request.dataset_id} not found")
        try:
            exports = normalise_exports(request.exports)
        except ValueError as exc:
            raise InvalidInput(f"exports: {exc}") from exc
        images = self._store.list_images(tenant_id, request.dataset_id)
        trainable_classes = {i.label for i in images if i.split != "val"}
        if len(trainable_classes) < 2:
            raise InvalidInput(
                f"dataset {request.dataset_id} has {len(trainable_classes)} class(es) with training"
                " images; a classifier needs at least 2"
            )
        job = Job(
            id=job_id,
            tenant_id=tenant_id,
            type=JobType.TRAIN,
            task=Task(request.task),
            dataset_id=request.dataset_id,
            model_id=model_id,
            params={**request.params.model_dump(), "exports": exports},
            webhook_url=request.webhook_url,
            epochs=request.params.epochs,
            request_fingerprint=fingerprint,
        )
        model = Model(
            id=model_id,
            tenant_id=tenant_id,
            name=request.model_name,
            description=request.description,
            task=job.task,
            job_id=job_id,
            dataset_id=request.dataset_id,
            params=job.params,
        )
        try:
            self._store.create_job(job, model)
        except Conflict:  # the same key, concurrently: the other request recorded it first
            raced = self._store.get_job(tenant_id, job_id)
            if raced is None:
                raise
            return self._replay(raced, fingerprint, request)
        self._launch(job, request, images)
        return self.get(tenant_id, job_id)

    def _replay(self, existing: Job, fingerprint: str, request: TrainJobRequest) -> Job:
        if existing.request_fingerprint != fingerprint:
            raise InvalidInput("Idempotency-Key was already used with a different request; use a new key")
        if existing.launch_ref is None and existing.status is JobStatus.PENDING:
            # the first request was recorded but never launched
            self._launch(existing, request, self._store.list_images(existing.tenant_id, existing.dataset_id))
        return self.get(existing.tenant_id, existing.id)

    def _launch(self, job: Job, request: TrainJobRequest, images: list[Image]) -> None:
        # each image's place in the channel: images/<its blob's file name>
        files = [ChannelFile(i.blob_key, f"images/{i.blob_key.rsplit('/', 1)[1]}") for i in images]
        manifest = "".join(
            json.dumps({"path": f.relative_path, "label": i.label, "split": i.split}) + "\n"
            for f, i in zip(files, images, strict=True)
        )
        spec = LaunchSpec(
            job_id=job.id,
            container="trainer",
            hyperparameters=to_hyperparameters(job.id, job.task.value, request.params, job.params["exports"]),
            channels={"training": files},
            channel_documents={"training": {"manifest.jsonl": manifest}},
            model_prefix=model_prefix(job.tenant_id, job.model_id),
        )
        try:
            self._store.set_launch_ref(job.id, self._launcher.launch(spec))
        except Exception as exc:
            log.exception("launching job %s failed", job.id)
            self.transition(job.id, JobStatus.FAILED, error=f"could not start the worker: {exc}")

    def transition(self, job_id: str, target: JobStatus, *, error: str | None = None) -> Job | None:
        job = self._store.transition_job(job_id, target, error=error)
        if job is None:
            return None
        if target in (JobStatus.FAILED, JobStatus.CANCELLED):
            self._settle_model(job, ModelStatus.FAILED)
        self._bus.publish(STATUS_CHANGED, {"job_id": job.id, "status": job.status.value})
        return job

    def _settle_model(self, job: Job, status: ModelStatus) -> None:
        model = self._store.get_model(job.tenant_id, job.model_id)
        if model is not None and model.status is not status:
            self._store.update_model(model.model_copy(update={"status": status}))

    def cancel(self, tenant_id: str, job_id: str) -> Job:
        job = self.get(tenant_id, job_id)
        if job.status.is_terminal:
            raise Conflict(f"job {job_id} is already {job.status.value}")
        if self.transition(job_id, JobStatus.CANCELLED) is not None:
            self._launcher.stop(job_id, job.launch_ref)
        return self.get(tenant_id, job_id)

    def get(self, tenant_id: str, job_id: str) -> Job:
        job = self._store.get_job(tenant_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def page(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._store.list_jobs(tenant_id, limit, cursor)

    def metrics(self, tenant_id: str, job_id: str) -> list[EpochMetrics]:
        self.get(tenant_id, job_id)
        return self._store.list_epochs(job_id)

    def settle_unlaunched(self) -> None:
        """At start-up: a job recorded but never launched (the service died in between)."""
        for job in self._store.list_unfinished_jobs():
            if job.launch_ref is None:
                self.transition(
                    job.id, JobStatus.FAILED, error="the service stopped before the job was launched"
                )


def public_job(job: Job) -> dict[str, Any]:
    return job.model_dump(
        mode="json",
        include={
            "id",
            "type",
            "task",
            "status",
            "dataset_id",
            "model_id",
            "current_epoch",
            "epochs",
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "last_epoch_duration_seconds",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "params",
            "webhook_url",
        },
    )
