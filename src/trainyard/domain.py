"""Domain records and the job state machine.

Records are plain pydantic models; every record carries the id of the tenant that owns it,
and every store query is scoped by that id.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Short, URL-safe, unguessable ids with a type prefix (`job_…`, `ds_…`)."""
    return f"{prefix}_{secrets.token_hex(8)}"


PLATFORM_NAME_PREFIX = "trainyard-"
PLATFORM_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's rule, the strictest


def platform_job_name(job_id: str) -> str:
    """The name a launcher gives a run on SageMaker or Batch: deterministic, so it is the
    platform-side idempotency key. SageMaker allows no `_`, so `job_ab12` → `trainyard-job-ab12`."""
    name = PLATFORM_NAME_PREFIX + job_id.replace("_", "-")
    if not PLATFORM_NAME.match(name):
        raise ValueError(f"job id {job_id!r} cannot be made into a platform job name")
    return name


def job_id_from_platform_name(name: object) -> str | None:
    """The inverse of platform_job_name for ids of the form `<type>_<hex>`; None for runs
    that are not Trainyard's."""
    if not isinstance(name, str) or not name.startswith(PLATFORM_NAME_PREFIX):
        return None
    kind, separator, token = name[len(PLATFORM_NAME_PREFIX) :].partition("-")
    return f"{kind}_{token}" if separator and kind and token else None


class JobStatus(StrEnum):
    PENDING = "PENDING"
    DOWNLOADING = "DOWNLOADING"
    DOWNLOADED = "DOWNLOADED"
    RUNNING = "RUNNING"
    EXPORTING = "EXPORTING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


# The happy path, in order. A job may skip forward along it (an intermediate event can be
# lost or arrive late) but never move back; FAILED and CANCELLED end any unfinished job.
FORWARD_PATH: tuple[JobStatus, ...] = (
    JobStatus.PENDING,
    JobStatus.DOWNLOADING,
    JobStatus.DOWNLOADED,
    JobStatus.RUNNING,
    JobStatus.EXPORTING,
    JobStatus.SUCCEEDED,
)
TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def allowed_predecessors(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which `target` may be reached; stores use this as the write condition."""
    if target in (JobStatus.FAILED, JobStatus.CANCELLED):
        return frozenset(s for s in JobStatus if not s.is_terminal)
    if target is JobStatus.PENDING:
        return frozenset()
    return frozenset(FORWARD_PATH[: FORWARD_PATH.index(target)])


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return current in allowed_predecessors(target)


class Record(BaseModel):
    """Base of the stored records. Schemas are built on first use, not at import: a Lambda
    cold start that answers a health check or one route pays only for what it touches."""

    model_config = ConfigDict(defer_build=True)


class JobType(StrEnum):
    TRAIN = "train"
    INFER = "infer"  # run a trained model on an input (a pose model on a video)


class Task(StrEnum):
    CLASSIFICATION = "classification"
    POSE = "pose"
    DETECTION = "detection"
    TAG = "tag"  # seed 003: one custom tag's classifier over the embedder's features
    EMBEDDER = "embedder"  # seed 003: the frozen backbone custom tags are fitted on


class Tenant(Record):
    id: str
    name: str
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(Record):
    """An API key as stored: only the SHA-256 of the secret, never the secret itself."""

    id: str
    tenant_id: str
    key_hash: str
    prefix: str  # the first characters of the key, to tell keys apart in listings
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Dataset(Record):
    id: str
    tenant_id: str
    name: str
    task: Task = Task.CLASSIFICATION
    classes: list[str]
    image_count: int  # pose: labelled frames
    # pose: the stored files, skeletons, labelled frame and instance counts, videos;
    # detection: the upload's format, the annotations file, box counts, images per split
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class Image(Record):
    id: str
    tenant_id: str
    dataset_id: str
    label: str
    split: str | None  # "train", "val" or None (the trainer splits)
    blob_key: str
    width: int
    height: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class Job(Record):
    id: str
    tenant_id: str
    type: JobType
    task: Task
    status: JobStatus = JobStatus.PENDING
    dataset_id: str | None  # None for inference jobs
    model_id: str  # the model a training job produces, or the one an inference job runs
    params: dict[str, Any]
    webhook_url: str | None = None
    current_epoch: int = 0
    epochs: int
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_map_50: float | None = None  # detection: mAP at IoU 0.5 on the validation images
    last_epoch_duration_seconds: float | None = None
    # work without epochs (video inference): how far it is, e.g. 120 of 300 frames
    progress_done: int = 0
    progress_total: int | None = None
    progress_unit: str | None = None
    result: dict[str, Any] | None = None  # an inference job's outputs (its results manifest)
    error: str | None = None
    launch_ref: str | None = None  # launcher-specific handle: pid, SageMaker job name, …
    request_fingerprint: str | None = None  # SHA-256 of the creating request (idempotent replays)
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


def transitioned(job: Job, target: JobStatus, error: str | None, result: dict[str, Any] | None) -> Job:
    """The job after a transition its current status allows (the stores check that)."""
    now = utcnow()
    update: dict[str, Any] = {"status": target, "version": job.version + 1, "updated_at": now}
    if target is JobStatus.RUNNING or (target.is_terminal and job.started_at is None):
        update["started_at"] = job.started_at or now
    if target.is_terminal:
        update["finished_at"] = now
    if error is not None:
        update["error"] = error
    if result is not None:
        update["result"] = result
    return job.model_copy(update=update)


def progressed(job: Job, done: int, total: int | None, unit: str) -> Job | None:
    """The job with its progress moved forward to `done`, or None when that is no step
    forward (a redelivered or late event)."""
    if done <= job.progress_done or job.status.is_terminal:
        return None
    return job.model_copy(
        update={
            "progress_done": done,
            "progress_total": total,
            "progress_unit": unit,
            "version": job.version + 1,
            "updated_at": utcnow(),
        }
    )


class EpochMetrics(Record):
    job_id: str
    epoch: int
    loss: float | None = None
    val_loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    val_map_50: float | None = None  # detection: COCO mAP at IoU 0.5
    val_map_50_95: float | None = None  # detection: mean over IoU 0.50:0.05:0.95
    lr: float | None = None
    duration_seconds: float | None = None


def summarised(job: Job, metrics: EpochMetrics, epochs: int) -> Job | None:
    """The job with its summary moved to this epoch, or None when the epoch is not later than
    the one it shows (a late, older epoch never rewinds the summary)."""
    if metrics.epoch <= job.current_epoch:
        return None
    return job.model_copy(
        update={
            "current_epoch": metrics.epoch,
            "epochs": epochs,
            "loss": metrics.loss,
            "accuracy": metrics.accuracy,
            "val_loss": metrics.val_loss,
            "val_accuracy": metrics.val_accuracy,
            "val_map_50": metrics.val_map_50,
            "last_epoch_duration_seconds": metrics.duration_seconds,
            "version": job.version + 1,
            "updated_at": utcnow(),
        }
    )


class ModelStatus(StrEnum):
    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"


class Model(Record):
    id: str
    tenant_id: str
    name: str
    description: str | None = None
    task: Task
    job_id: str
    dataset_id: str
    status: ModelStatus = ModelStatus.TRAINING
    classes: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    exports: list[str] = Field(default_factory=list)
    manifest: dict[str, Any] = Field(default_factory=dict)  # the container's trainyard_model.json
    created_at: datetime = Field(default_factory=utcnow)


class Alias(Record):
    """A name a seed API gives a record, in one namespace of one tenant: seed 000's integer
    model ids, seed 002's (profile_id, project_name) pairs, seed 003's tags and image ids.
    `target` is the Trainyard id it stands for; `data` holds what that API keeps besides
    (a tag's positive and negative image ids, an image's metadata)."""

    tenant_id: str
    namespace: str
    name: str
    target: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(Record):
    """One message to one URL; attempts are retried until delivered or out of attempts."""

    id: str  # the Standard Webhooks `webhook-id`, stable across retries
    tenant_id: str
    job_id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    attempt_log: list[dict[str, Any]] = Field(default_factory=list)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    # 1 + the number of redeliveries; `attempts` counts the current series, and every
    # attempt_log entry names its series, so the log keeps all of them
    series: int = 1
    # bumped by every write through JobStore.replace_delivery: two workers (the scheduled and
    # the event-driven Lambda) cannot both claim one attempt
    version: int = 0


class WebhookEndpoint(Record):
    """A receiver URL of a tenant: its own signing secret (kept in the SecretStore, never
    here) and whether it is disabled (it answered 410 Gone). The id is derived from
    (tenant, url), so a delivery finds its endpoint from its URL alone."""

    id: str
    tenant_id: str
    url: str
    # False for a URL that was never registered but answered 410: recorded only to stop
    # sending to it; such an endpoint signs with the tenant-wide secret
    registered: bool = True
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    secret_rotated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
