"""JobStore on SQLite (WAL). Conditional writes run inside BEGIN IMMEDIATE transactions, which
serialise writers, so a check-then-write is atomic like a DynamoDB ConditionExpression."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ...domain import (
    Alias,
    ApiKey,
    Dataset,
    DeliveryStatus,
    EpochMetrics,
    Image,
    Job,
    JobStatus,
    Model,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
    allowed_predecessors,
    progressed,
    summarised,
    transitioned,
    utcnow,
)
from ...errors import BadRequest, Conflict, NotFound
from ...ports import Page

R = TypeVar("R", bound=BaseModel)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS datasets_by_tenant ON datasets (tenant_id, created_at, id);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, dataset_id TEXT NOT NULL,
    created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS images_by_dataset ON images (dataset_id, created_at, id);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant_id, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS epochs (
    job_id TEXT NOT NULL, epoch INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch));
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS models_by_tenant ON models (tenant_id, created_at, id);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, job_id TEXT NOT NULL, status TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_by_job ON deliveries (job_id, created_at);
CREATE TABLE IF NOT EXISTS aliases (
    tenant_id TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    created_at TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant_id, namespace, name));
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    tenant_id TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name));
"""

# Tables listed by tenant, newest first; the cursor is the last row's (created_at, id).
LISTABLE: dict[str, type[Dataset] | type[Job] | type[Model]] = {
    "datasets": Dataset,
    "jobs": Job,
    "models": Model,
}


def encode_cursor(created_at: str, record_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, record_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        created_at, record_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(created_at), str(record_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"invalid pagination cursor {cursor!r}") from exc


@contextmanager
def _conflict_on_duplicate(message: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(message) from exc


def _ts(value: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order (isoformat drops zero µs)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


class SqliteJobStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    # --- plumbing -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so reads never hold a lock.
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _one(self, cls: type[R], sql: str, *args: Any) -> R | None:
        row = self._connection().execute(sql, args).fetchone()
        return cls.model_validate_json(row[0]) if row else None

    def _all(self, cls: type[R], sql: str, *args: Any) -> list[R]:
        return [cls.model_validate_json(r[0]) for r in self._connection().execute(sql, args)]

    def _update_doc(
        self, table: str, cls: type[R], record_id: str, change: Callable[[R], R | None]
    ) -> R | None:
        """Read-modify-write one record atomically; `change` returns None to leave it as is."""
        with self._write() as conn:
            row = conn.execute(f"SELECT doc FROM {table} WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                return None
            updated = change(cls.model_validate_json(row[0]))
            if updated is None:
                return None
            if isinstance(updated, Job):  # the status column is what the jobs_by_status index reads
                conn.execute(
                    "UPDATE jobs SET doc = ?, status = ? WHERE id = ?",
                    (updated.model_dump_json(), updated.status.value, record_id),
                )
            else:
                conn.execute(
                    f"UPDATE {table} SET doc = ? WHERE id = ?", (updated.model_dump_json(), record_id)
                )
            return updated

    def _page(self, table: str, tenant_id: str, limit: int, cursor: str | None) -> Page:
        cls = LISTABLE[table]
        sql = f"SELECT doc, created_at, id FROM {table} WHERE tenant_id = ?"
        args: list[Any] = [tenant_id]
        if cursor:
            sql += " AND (created_at, id) < (?, ?)"
            args.extend(decode_cursor(cursor))
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(limit + 1)
        rows = self._connection().execute(sql, args).fetchall()
        items = [cls.model_validate_json(r[0]) for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1][1], rows[limit - 1][2]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    # --- tenants and keys -----------------------------------------------------------------

    def put_tenant(self, tenant: Tenant) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO tenants (id, doc) VALUES (?, ?)",
                (tenant.id, tenant.model_dump_json()),
            )

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        return self._one(Tenant, "SELECT doc FROM tenants WHERE id = ?", tenant_id)

    def put_api_key(self, key: ApiKey) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO api_keys (id, key_hash, doc) VALUES (?, ?, ?)",
                (key.id, key.key_hash, key.model_dump_json()),
            )

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        return self._one(ApiKey, "SELECT doc FROM api_keys WHERE key_hash = ?", key_hash)

    def list_api_keys(self) -> list[ApiKey]:
        return self._all(ApiKey, "SELECT doc FROM api_keys ORDER BY id")

    def revoke_api_key(self, key_id: str) -> bool:
        def revoke(key: ApiKey) -> ApiKey | None:
            return None if key.revoked_at else key.model_copy(update={"revoked_at": utcnow()})

        return self._update_doc("api_keys", ApiKey, key_id, revoke) is not None

    # --- datasets and images --------------------------------------------------------------

    def _insert_images(self, conn: sqlite3.Connection, images: list[Image]) -> None:
        conn.executemany(
            "INSERT INTO images (id, tenant_id, dataset_id, created_at, doc) VALUES (?,?,?,?,?)",
            [(i.id, i.tenant_id, i.dataset_id, _ts(i.created_at), i.model_dump_json()) for i in images],
        )

    def create_dataset(self, dataset: Dataset, images: list[Image]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO datasets (id, tenant_id, created_at, doc) VALUES (?, ?, ?, ?)",
                (dataset.id, dataset.tenant_id, _ts(dataset.created_at), dataset.model_dump_json()),
            )
            self._insert_images(conn, images)

    def add_images(self, tenant_id: str, dataset_id: str, images: list[Image]) -> Dataset:
        with self._write() as conn:
            row = conn.execute(
                "SELECT doc FROM datasets WHERE id = ? AND tenant_id = ?", (dataset_id, tenant_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"dataset {dataset_id} not found")
            dataset = Dataset.model_validate_json(row[0])
            classes = list(dict.fromkeys([*dataset.classes, *(i.label for i in images)]))
            dataset = dataset.model_copy(
                update={"classes": classes, "image_count": dataset.image_count + len(images)}
            )
            conn.execute("UPDATE datasets SET doc = ? WHERE id = ?", (dataset.model_dump_json(), dataset.id))
            self._insert_images(conn, images)
            return dataset

    def get_dataset(self, tenant_id: str, dataset_id: str) -> Dataset | None:
        return self._one(
            Dataset, "SELECT doc FROM datasets WHERE id = ? AND tenant_id = ?", dataset_id, tenant_id
        )

    def list_datasets(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._page("datasets", tenant_id, limit, cursor)

    def delete_dataset(self, tenant_id: str, dataset_id: str) -> bool:
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM datasets WHERE id = ? AND tenant_id = ?", (dataset_id, tenant_id)
            ).rowcount
            if deleted:
                conn.execute(
                    "DELETE FROM images WHERE dataset_id = ? AND tenant_id = ?", (dataset_id, tenant_id)
                )
            return deleted > 0

    def list_images(self, tenant_id: str, dataset_id: str) -> list[Image]:
        return self._all(
            Image,
            "SELECT doc FROM images WHERE dataset_id = ? AND tenant_id = ? ORDER BY created_at, id",
            dataset_id,
            tenant_id,
        )

    # --- jobs and models ------------------------------------------------------------------

    def create_job(self, job: Job, model: Model | None) -> None:
        with self._write() as conn, _conflict_on_duplicate(f"job {job.id} already exists"):
            conn.execute(
                "INSERT INTO jobs (id, tenant_id, status, created_at, doc) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.tenant_id, job.status.value, _ts(job.created_at), job.model_dump_json()),
            )
            if model is None:  # an inference job runs an existing model
                return
            conn.execute(
                "INSERT INTO models (id, tenant_id, created_at, doc) VALUES (?, ?, ?, ?)",
                (model.id, model.tenant_id, _ts(model.created_at), model.model_dump_json()),
            )

    def get_job(self, tenant_id: str, job_id: str) -> Job | None:
        return self._one(Job, "SELECT doc FROM jobs WHERE id = ? AND tenant_id = ?", job_id, tenant_id)

    def get_job_any_tenant(self, job_id: str) -> Job | None:
        return self._one(Job, "SELECT doc FROM jobs WHERE id = ?", job_id)

    def list_jobs(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._page("jobs", tenant_id, limit, cursor)

    def list_unfinished_jobs(self) -> list[Job]:
        unfinished = [s.value for s in JobStatus if not s.is_terminal]
        marks = ",".join("?" * len(unfinished))
        return self._all(Job, f"SELECT doc FROM jobs WHERE status IN ({marks})", *unfinished)

    def transition_job(
        self,
        job_id: str,
        target: JobStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> Job | None:
        def move(job: Job) -> Job | None:
            if job.status not in allowed_predecessors(target):
                return None
            return transitioned(job, target, error, result)

        return self._update_doc("jobs", Job, job_id, move)

    def record_progress(self, job_id: str, done: int, total: int | None, unit: str) -> bool:
        return (
            self._update_doc("jobs", Job, job_id, lambda job: progressed(job, done, total, unit)) is not None
        )

    def set_launch_ref(self, job_id: str, launch_ref: str) -> None:
        self._update_doc("jobs", Job, job_id, lambda job: job.model_copy(update={"launch_ref": launch_ref}))

    def record_epoch(self, metrics: EpochMetrics, epochs: int) -> bool:
        with self._write() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO epochs (job_id, epoch, doc) VALUES (?, ?, ?)",
                (metrics.job_id, metrics.epoch, metrics.model_dump_json()),
            ).rowcount
            row = conn.execute("SELECT doc FROM jobs WHERE id = ?", (metrics.job_id,)).fetchone()
            if not inserted or row is None:
                return False
            job = summarised(Job.model_validate_json(row[0]), metrics, epochs)
            if job is not None:
                conn.execute("UPDATE jobs SET doc = ? WHERE id = ?", (job.model_dump_json(), job.id))
            return True

    def list_epochs(self, job_id: str) -> list[EpochMetrics]:
        return self._all(EpochMetrics, "SELECT doc FROM epochs WHERE job_id = ? ORDER BY epoch", job_id)

    def get_model(self, tenant_id: str, model_id: str) -> Model | None:
        return self._one(Model, "SELECT doc FROM models WHERE id = ? AND tenant_id = ?", model_id, tenant_id)

    def list_models(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._page("models", tenant_id, limit, cursor)

    def update_model(self, model: Model) -> None:
        with self._write() as conn:
            conn.execute("UPDATE models SET doc = ? WHERE id = ?", (model.model_dump_json(), model.id))

    def delete_model(self, tenant_id: str, model_id: str) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    "DELETE FROM models WHERE id = ? AND tenant_id = ?", (model_id, tenant_id)
                ).rowcount
                > 0
            )

    # --- aliases --------------------------------------------------------------------------

    def put_alias(self, alias: Alias) -> None:
        with self._write() as conn, _conflict_on_duplicate(f"{alias.namespace} {alias.name!r} exists"):
            conn.execute(
                "INSERT INTO aliases (tenant_id, namespace, name, created_at, doc) VALUES (?, ?, ?, ?, ?)",
                (
                    alias.tenant_id,
                    alias.namespace,
                    alias.name,
                    _ts(alias.created_at),
                    alias.model_dump_json(),
                ),
            )

    def get_alias(self, tenant_id: str, namespace: str, name: str) -> Alias | None:
        return self._one(
            Alias,
            "SELECT doc FROM aliases WHERE tenant_id = ? AND namespace = ? AND name = ?",
            tenant_id,
            namespace,
            name,
        )

    def list_aliases(self, tenant_id: str, namespace: str) -> list[Alias]:
        return self._all(
            Alias,
            "SELECT doc FROM aliases WHERE tenant_id = ? AND namespace = ? ORDER BY created_at, name",
            tenant_id,
            namespace,
        )

    def update_alias(self, alias: Alias) -> None:
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE aliases SET doc = ? WHERE tenant_id = ? AND namespace = ? AND name = ?",
                (alias.model_dump_json(), alias.tenant_id, alias.namespace, alias.name),
            ).rowcount
        if not updated:
            raise NotFound(f"{alias.namespace} {alias.name!r} not found")

    def replace_alias(self, previous: Alias, updated: Alias) -> bool:
        # the document's updated_at as it was written: the same serialiser wrote both
        expected = previous.model_dump(mode="json", include={"updated_at"})["updated_at"]
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE aliases SET doc = ? WHERE tenant_id = ? AND namespace = ? AND name = ?"
                " AND json_extract(doc, '$.updated_at') = ?",
                (updated.model_dump_json(), previous.tenant_id, previous.namespace, previous.name, expected),
            )
            return cursor.rowcount == 1

    def delete_alias(self, tenant_id: str, namespace: str, name: str) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    "DELETE FROM aliases WHERE tenant_id = ? AND namespace = ? AND name = ?",
                    (tenant_id, namespace, name),
                ).rowcount
                > 0
            )

    def next_number(self, tenant_id: str, counter: str) -> int:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO counters (tenant_id, name, value) VALUES (?, ?, 1)"
                " ON CONFLICT (tenant_id, name) DO UPDATE SET value = value + 1",
                (tenant_id, counter),
            )
            row = conn.execute(
                "SELECT value FROM counters WHERE tenant_id = ? AND name = ?", (tenant_id, counter)
            ).fetchone()
        return int(row[0])

    # --- webhook deliveries ---------------------------------------------------------------

    def put_delivery(self, delivery: WebhookDelivery) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    "INSERT OR IGNORE INTO deliveries (id, tenant_id, job_id, status,"
                    " next_attempt_at, created_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        delivery.id,
                        delivery.tenant_id,
                        delivery.job_id,
                        delivery.status.value,
                        _ts(delivery.next_attempt_at),
                        _ts(delivery.created_at),
                        delivery.model_dump_json(),
                    ),
                ).rowcount
                > 0
            )

    def update_delivery(self, delivery: WebhookDelivery) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, doc = ? WHERE id = ?",
                (
                    delivery.status.value,
                    _ts(delivery.next_attempt_at),
                    delivery.model_dump_json(),
                    delivery.id,
                ),
            )

    def due_deliveries(self, limit: int) -> list[WebhookDelivery]:
        return self._all(
            WebhookDelivery,
            "SELECT doc FROM deliveries WHERE status = ? AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?",
            DeliveryStatus.PENDING.value,
            _ts(utcnow()),
            limit,
        )

    def list_deliveries(self, tenant_id: str, job_id: str) -> list[WebhookDelivery]:
        return self._all(
            WebhookDelivery,
            "SELECT doc FROM deliveries WHERE job_id = ? AND tenant_id = ? ORDER BY created_at",
            job_id,
            tenant_id,
        )

    def replace_delivery(self, previous: WebhookDelivery, updated: WebhookDelivery) -> bool:
        with self._write() as conn:
            # documents written before `version` existed read as version 0
            cursor = conn.execute(
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, doc = ?"
                " WHERE id = ? AND COALESCE(json_extract(doc, '$.version'), 0) = ?",
                (
                    updated.status.value,
                    _ts(updated.next_attempt_at),
                    updated.model_dump_json(),
                    previous.id,
                    previous.version,
                ),
            )
            return cursor.rowcount == 1

    # --- webhook endpoints ----------------------------------------------------------------

    def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO webhook_endpoints (id, tenant_id, created_at, doc)"
                " VALUES (?, ?, ?, ?)",
                (endpoint.id, endpoint.tenant_id, _ts(endpoint.created_at), endpoint.model_dump_json()),
            )

    def get_webhook_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        return self._one(
            WebhookEndpoint,
            "SELECT doc FROM webhook_endpoints WHERE id = ? AND tenant_id = ?",
            endpoint_id,
            tenant_id,
        )

    def list_webhook_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return self._all(
            WebhookEndpoint,
            "SELECT doc FROM webhook_endpoints WHERE tenant_id = ? ORDER BY created_at, id",
            tenant_id,
        )

    def delete_webhook_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM webhook_endpoints WHERE id = ? AND tenant_id = ?", (endpoint_id, tenant_id)
            )
            return cursor.rowcount == 1
