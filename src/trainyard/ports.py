"""The ports: what the services need from the outside world. Adapters implement them.

| port        | local adapter                  | AWS adapter                    |
|-------------|--------------------------------|--------------------------------|
| JobStore    | SQLite (WAL)                   | DynamoDB single table          |
| BlobStore   | a directory                    | S3                             |
| JobLauncher | subprocess in the container venv | SageMaker / AWS Batch        |
| EventBus    | in-process dispatch            | EventBridge                    |
| PoseProbe   | subprocess in the pose venv    | the pose probe Lambda (image)  |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from .domain import (
    Alias,
    ApiKey,
    Dataset,
    EpochMetrics,
    Image,
    Job,
    JobStatus,
    Model,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
)


@dataclass(frozen=True)
class Page:
    """One page of a list; `next_cursor` is opaque to clients and None on the last page."""

    items: list[Any]
    next_cursor: str | None


class JobStore(Protocol):
    """All records of the service (one table on AWS). Every read is scoped by tenant."""

    # tenants and keys
    def put_tenant(self, tenant: Tenant) -> None: ...
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...
    def put_api_key(self, key: ApiKey) -> None: ...
    def find_api_key(self, key_hash: str) -> ApiKey | None: ...
    def list_api_keys(self) -> list[ApiKey]: ...
    def revoke_api_key(self, key_id: str) -> bool: ...

    # datasets and images; a dataset and its images are written in one transaction
    def create_dataset(self, dataset: Dataset, images: list[Image]) -> None: ...
    def add_images(self, tenant_id: str, dataset_id: str, images: list[Image]) -> Dataset: ...
    def get_dataset(self, tenant_id: str, dataset_id: str) -> Dataset | None: ...
    def list_datasets(self, tenant_id: str, limit: int, cursor: str | None) -> Page: ...
    def delete_dataset(self, tenant_id: str, dataset_id: str) -> bool: ...
    def list_images(self, tenant_id: str, dataset_id: str) -> list[Image]: ...

    # jobs and models; a training job and the model it produces are created together
    def create_job(self, job: Job, model: Model | None) -> None:
        """Raises Conflict when a job with this id exists (ids can be derived from an
        idempotency key, so two requests may race for one)."""
        ...

    def get_job(self, tenant_id: str, job_id: str) -> Job | None: ...
    def get_job_any_tenant(self, job_id: str) -> Job | None: ...
    def list_jobs(self, tenant_id: str, limit: int, cursor: str | None) -> Page: ...
    def list_unfinished_jobs(self) -> list[Job]: ...
    def transition_job(
        self,
        job_id: str,
        target: JobStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> Job | None:
        """Move the job to `target` only if its current status allows it (a conditional
        write), recording `error` or an inference job's `result` with it. Returns the updated
        job, or None when the write did not apply."""
        ...

    def set_launch_ref(self, job_id: str, launch_ref: str) -> None: ...
    def record_epoch(self, metrics: EpochMetrics, epochs: int) -> bool:
        """Store one epoch's metrics once; the job's summary moves only to a later epoch.
        Returns False for a duplicate."""
        ...

    def record_progress(self, job_id: str, done: int, total: int | None, unit: str) -> bool:
        """Move the job's progress forward to `done`; a late, smaller count changes nothing.
        Returns whether it moved."""
        ...

    def list_epochs(self, job_id: str) -> list[EpochMetrics]: ...
    def get_model(self, tenant_id: str, model_id: str) -> Model | None: ...
    def list_models(self, tenant_id: str, limit: int, cursor: str | None) -> Page: ...
    def update_model(self, model: Model) -> None: ...
    def delete_model(self, tenant_id: str, model_id: str) -> bool: ...

    # aliases: the names the seed APIs give records (api/seeds/)
    def put_alias(self, alias: Alias) -> None:
        """Insert; raises Conflict when the tenant already has this name in this namespace."""
        ...

    def get_alias(self, tenant_id: str, namespace: str, name: str) -> Alias | None: ...
    def list_aliases(self, tenant_id: str, namespace: str) -> list[Alias]:
        """Every alias of the namespace, oldest first."""
        ...

    def update_alias(self, alias: Alias) -> None:
        """Replace an existing alias (its target or data); raises NotFound when it is gone."""
        ...

    def replace_alias(self, previous: Alias, updated: Alias) -> bool:
        """Write `updated` only while the stored alias is still as `previous` was read (its
        updated_at unchanged): compare-and-set, so that of two writers that read the same
        alias one wins (taking over an idempotency claim). False when another writer changed
        or deleted it first. The caller gives `updated` a new updated_at."""
        ...

    def delete_alias(self, tenant_id: str, namespace: str, name: str) -> bool: ...
    def next_number(self, tenant_id: str, counter: str) -> int:
        """1, 2, 3, … per (tenant, counter), atomically: the integer ids seed APIs hand out."""
        ...

    # webhook deliveries
    def put_delivery(self, delivery: WebhookDelivery) -> bool:
        """Insert if absent (the id is deterministic); False when it already existed."""
        ...

    def update_delivery(self, delivery: WebhookDelivery) -> None: ...
    def due_deliveries(self, limit: int) -> list[WebhookDelivery]: ...
    def list_deliveries(self, tenant_id: str, job_id: str) -> list[WebhookDelivery]: ...
    def replace_delivery(self, previous: WebhookDelivery, updated: WebhookDelivery) -> bool:
        """Write `updated` only while the stored delivery is still at `previous.version`
        (compare-and-set: claiming an attempt, redelivering); False when another writer won.
        The caller sets updated.version = previous.version + 1."""
        ...

    # webhook endpoints (id derived from tenant and URL)
    def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Insert or replace."""
        ...

    def get_webhook_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None: ...
    def list_webhook_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        """Oldest first."""
        ...

    def delete_webhook_endpoint(self, tenant_id: str, endpoint_id: str) -> bool: ...


class BlobStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def local_path(self, key: str) -> Path:
        """A path on this machine holding the blob (a cache copy for remote stores)."""
        ...

    def presigned_get_url(self, key: str, expires_seconds: int, filename: str | None = None) -> str | None:
        """A URL a client can download the blob from directly, or None where the store has
        none (the local store: the API streams the file itself)."""
        ...


@dataclass(frozen=True)
class ChannelFile:
    blob_key: str
    relative_path: str


@dataclass(frozen=True)
class LaunchSpec:
    """What any launcher needs to start one container run (see docs/job-contract.md)."""

    job_id: str
    container: str  # "trainer" or "pose"
    hyperparameters: dict[str, str]
    channels: dict[str, list[ChannelFile]]
    channel_documents: dict[str, dict[str, str]] = field(default_factory=dict)
    model_prefix: str = ""  # where the model dir is persisted in the blob store


@dataclass(frozen=True)
class WorkerExit:
    """How a container run ended, as seen by the platform."""

    job_id: str
    succeeded: bool
    reason: str | None  # the failure file's first line, or the signal that killed it


class LaunchState(StrEnum):
    RUNNING = "running"  # queued, starting or training
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed, stopped or cancelled on the platform
    UNKNOWN = "unknown"  # the platform has no record of it


@dataclass(frozen=True)
class LaunchStatus:
    state: LaunchState
    reason: str | None = None


class JobLauncher(Protocol):
    def launch(self, spec: LaunchSpec) -> str:
        """Start the run; returns a launch reference. Idempotent per job id: a second call
        for the same job never starts a second run."""
        ...

    def stop(self, job_id: str, launch_ref: str | None) -> None: ...

    def describe(self, job_id: str, launch_ref: str | None) -> LaunchStatus:
        """What the platform says of the run; the reaper settles jobs whose terminal event
        never came from this."""
        ...

    def persist_model(self, job_id: str, model_prefix: str) -> None:
        """Copy a finished run's model dir into the blob store under `model_prefix` (the
        platform's upload: SageMaker's model.tar.gz, Batch's model prefix, the local dir)."""
        ...


EventHandler = Callable[[dict[str, Any]], None]


class EventBus(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...
    def subscribe(self, detail_type: str, handler: EventHandler) -> None: ...


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...
    def put(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None:
        """Remove the secret at once (no recovery window); an unknown name is not an error."""
        ...


class ImportRunner(Protocol):
    """Runs seed 002's import of a dataset from the caller's storage after the request that
    asked for it has been answered (services/external_datasets.py)."""

    def submit(
        self, job_id: str, plan: dict[str, Any], credentials: dict[str, str], run_here: Callable[[], None]
    ) -> None:
        """Start the import. An in-process runner calls `run_here` (the credentials stay in its
        closure); one that hands the import to another process sends `plan` (which holds no
        credential) and hands `credentials` over separately. Raises Unavailable when the
        import cannot be started."""
        ...

    def take_credentials(self, job_id: str) -> dict[str, str] | None:
        """Where a handed-over import runs: the job's credentials, removed as they are read;
        None when there are none (already taken, or never handed over)."""
        ...


def iter_pages(fetch: Callable[[str | None], Page]) -> Iterator[Any]:
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class PoseProbe(Protocol):
    """Checks pose inputs with SLEAP's own readers, outside the API process: sleap-io and its
    video decoders live in the pose container's environment (containers/pose/pose/probe.py).
    Raises InvalidInput with the reason when the input is bad, Unavailable when it cannot run."""

    def probe_dataset(self, root: Path, min_frames: int) -> dict[str, Any]:
        """A summary of the SLEAP labels unpacked under `root`: labels file, video files,
        skeletons, labelled frames, instances, videos."""
        ...

    def probe_video(self, path: Path, filename: str) -> dict[str, Any]:
        """{"video": {name, frames, height, width, channels, fps}} for a decodable video;
        `filename` is its name as uploaded (the decoder goes by its extension)."""
        ...
