"""JobStore on one DynamoDB table (the key design is in docs/aws-design.md).

Every record is stored as its pydantic JSON in `doc`, next to the key attributes and, for jobs,
the top-level attributes that write conditions read. Read-modify-write updates are optimistic:
the write is conditioned on `doc` still being the text that was read, and a lost race re-reads
and decides again, so a concurrent writer's change is never overwritten with a stale document.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
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

# A low-level DynamoDB item or key: attribute name -> typed value ({"S": "..."}, {"N": "1"}).
Item = dict[str, Any]

MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
MAX_BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit
# Optimistic writes retry only while other writers keep winning; this many losses in a row
# means something is hammering one record, and the caller hears about it.
MAX_OPTIMISTIC_ATTEMPTS = 20

UNFINISHED_PARTITION = "UNFINISHED"
PENDING_DELIVERIES_PARTITION = "DELIVERY#PENDING"
API_KEYS_PARTITION = "APIKEYS"
LIST_CURSOR_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk")
# '$' sorts right after '#', so "<time>$" is above every "<time>#<id>" key of that instant.
AFTER_ANY_ID = "$"


def _sortable_time(value: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order (isoformat drops zero µs)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _doc(item: Item, cls: type[R]) -> R:
    return cls.model_validate_json(item["doc"]["S"])


def _key(item: Item) -> Item:
    return {"pk": item["pk"], "sk": item["sk"]}


# --- items: one builder per record, following the table in docs/aws-design.md -------------


def _tenant_key(tenant_id: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("TENANT")}


def _api_key_key(key_hash: str) -> Item:
    return {"pk": _s(f"APIKEY#{key_hash}"), "sk": _s("APIKEY")}


def _dataset_key(dataset_id: str) -> Item:
    return {"pk": _s(f"DATASET#{dataset_id}"), "sk": _s("DATASET")}


def _job_key(job_id: str) -> Item:
    return {"pk": _s(f"JOB#{job_id}"), "sk": _s("JOB")}


def _model_key(model_id: str) -> Item:
    return {"pk": _s(f"MODEL#{model_id}"), "sk": _s("MODEL")}


def _alias_key(tenant_id: str, namespace: str, name: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}#ALIAS#{namespace}"), "sk": _s(name)}


def _alias_item(alias: Alias) -> Item:
    return {
        **_alias_key(alias.tenant_id, alias.namespace, alias.name),
        "tenant_id": _s(alias.tenant_id),
        "created": _s(_sortable_time(alias.created_at)),
        "updated": _s(_sortable_time(alias.updated_at)),  # what replace_alias's condition reads
        "doc": _s(alias.model_dump_json()),
    }


def _counter_key(tenant_id: str, counter: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}#COUNTER"), "sk": _s(counter)}


def _tenant_item(tenant: Tenant) -> Item:
    return {**_tenant_key(tenant.id), "doc": _s(tenant.model_dump_json())}


def _api_key_item(key: ApiKey) -> Item:
    return {
        **_api_key_key(key.key_hash),
        "gsi1pk": _s(API_KEYS_PARTITION),
        "gsi1sk": _s(key.id),
        "tenant_id": _s(key.tenant_id),
        "doc": _s(key.model_dump_json()),
    }


def _listed_by_tenant(tenant_id: str, collection: str, created_at: datetime, record_id: str) -> Item:
    return {
        "gsi1pk": _s(f"TENANT#{tenant_id}#{collection}"),
        "gsi1sk": _s(f"{_sortable_time(created_at)}#{record_id}"),
    }


def _dataset_item(dataset: Dataset) -> Item:
    return {
        **_dataset_key(dataset.id),
        **_listed_by_tenant(dataset.tenant_id, "DATASETS", dataset.created_at, dataset.id),
        "tenant_id": _s(dataset.tenant_id),
        "doc": _s(dataset.model_dump_json()),
    }


def _image_item(image: Image) -> Item:
    return {
        "pk": _s(f"DATASET#{image.dataset_id}"),
        "sk": _s(f"IMAGE#{_sortable_time(image.created_at)}#{image.id}"),
        "tenant_id": _s(image.tenant_id),
        "doc": _s(image.model_dump_json()),
    }


def _unfinished_index_keys(job: Job) -> Item:
    """The sparse gsi2 entry the reaper scans; a terminal job has none."""
    if job.status.is_terminal:
        return {}
    return {
        "gsi2pk": _s(UNFINISHED_PARTITION),
        "gsi2sk": _s(f"{_sortable_time(job.updated_at)}#{job.id}"),
    }


def _job_item(job: Job) -> Item:
    return {
        **_job_key(job.id),
        **_listed_by_tenant(job.tenant_id, "JOBS", job.created_at, job.id),
        **_unfinished_index_keys(job),
        "status": _s(job.status.value),
        "version": _n(job.version),
        "current_epoch": _n(job.current_epoch),
        "tenant_id": _s(job.tenant_id),
        "doc": _s(job.model_dump_json()),
    }


def _epoch_item(metrics: EpochMetrics) -> Item:
    return {
        "pk": _s(f"JOB#{metrics.job_id}"),
        "sk": _s(f"EPOCH#{metrics.epoch:06d}"),
        "doc": _s(metrics.model_dump_json()),
    }


def _model_item(model: Model) -> Item:
    return {
        **_model_key(model.id),
        **_listed_by_tenant(model.tenant_id, "MODELS", model.created_at, model.id),
        "tenant_id": _s(model.tenant_id),
        "doc": _s(model.model_dump_json()),
    }


def _delivery_item(delivery: WebhookDelivery) -> Item:
    item: Item = {
        "pk": _s(f"JOB#{delivery.job_id}"),
        "sk": _s(f"DELIVERY#{delivery.id}"),
        "gsi1pk": _s(f"DELIVERY#{delivery.id}"),
        "gsi1sk": _s("DELIVERY"),
        "tenant_id": _s(delivery.tenant_id),
        "status": _s(delivery.status.value),
        "version": _n(delivery.version),  # what replace_delivery's condition reads
        "doc": _s(delivery.model_dump_json()),
    }
    if delivery.status is DeliveryStatus.PENDING:  # sparse: only pending ones are ever due
        item["gsi2pk"] = _s(PENDING_DELIVERIES_PARTITION)
        item["gsi2sk"] = _s(f"{_sortable_time(delivery.next_attempt_at)}#{delivery.id}")
    return item


def _endpoint_key(tenant_id: str, endpoint_id: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}#WEBHOOKS"), "sk": _s(f"ENDPOINT#{endpoint_id}")}


def _endpoint_item(endpoint: WebhookEndpoint) -> Item:
    return {
        **_endpoint_key(endpoint.tenant_id, endpoint.id),
        "tenant_id": _s(endpoint.tenant_id),
        "doc": _s(endpoint.model_dump_json()),
    }


# --- cursors ----------------------------------------------------------------------------


def encode_cursor(last_key: Item) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str, partition: str) -> Item:
    """The ExclusiveStartKey a cursor stands for; anything that is not a key of `partition`
    (garbage, or another tenant's or another list's cursor) is a bad request."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error) as exc:
        raise BadRequest(f"invalid pagination cursor {cursor!r}") from exc
    well_formed = (
        isinstance(key, dict)
        and sorted(key) == sorted(LIST_CURSOR_ATTRIBUTES)
        and all(isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str) for v in key.values())
    )
    if not well_formed or key["gsi1pk"]["S"] != partition:
        raise BadRequest(f"invalid pagination cursor {cursor!r}")
    return dict(key)


class DynamoDbJobStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        if client is None:
            # Imported here, not at module level: a Lambda cold start that never touches the
            # store does not pay for boto3. Clients are thread-safe, so one serves every thread.
            import boto3

            client = boto3.client("dynamodb")
        self._client = client
        self._conditional_check_failed = client.exceptions.ConditionalCheckFailedException
        self._transaction_cancelled = client.exceptions.TransactionCanceledException

    # --- plumbing -------------------------------------------------------------------------

    def _get(self, key: Item) -> Item | None:
        response = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        item: Item | None = response.get("Item")
        return item

    def _get_owned(self, key: Item, cls: type[R], tenant_id: str) -> R | None:
        """Another tenant's record reads as absent."""
        item = self._get(key)
        if item is None or item.get("tenant_id", {}).get("S") != tenant_id:
            return None
        return _doc(item, cls)

    def _query(self, *, limit: int | None = None, **params: Any) -> list[Item]:
        """All items of a query (following LastEvaluatedKey), or the first `limit` of them."""
        items: list[Item] = []
        if limit is not None and limit < 1:
            return items  # DynamoDB refuses Limit=0
        while True:
            if limit is not None:
                params["Limit"] = limit - len(items)
            response = self._client.query(TableName=self._table, **params)
            items.extend(response["Items"])
            last_key = response.get("LastEvaluatedKey")
            if not last_key or (limit is not None and len(items) >= limit):
                return items
            params["ExclusiveStartKey"] = last_key

    def _put(self, item: Item, condition: str | None = None) -> bool:
        """PutItem; False when `condition` did not hold (nothing was written)."""
        params: dict[str, Any] = {"TableName": self._table, "Item": item}
        if condition:
            params["ConditionExpression"] = condition
        try:
            self._client.put_item(**params)
        except self._conditional_check_failed:
            return False
        return True

    def _delete_if_owned(self, key: Item, tenant_id: str) -> bool:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=key,
                ConditionExpression="#tenant_id = :tenant_id",
                ExpressionAttributeNames={"#tenant_id": "tenant_id"},
                ExpressionAttributeValues={":tenant_id": _s(tenant_id)},
            )
        except self._conditional_check_failed:
            return False
        return True

    def _delete_keys(self, keys: Sequence[Item]) -> None:
        for chunk in _chunks(keys, MAX_BATCH_WRITE_ITEMS):
            requests: dict[str, Any] = {self._table: [{"DeleteRequest": {"Key": key}} for key in chunk]}
            delay = 0.05
            while requests:
                response = self._client.batch_write_item(RequestItems=requests)
                requests = response.get("UnprocessedItems") or {}
                if requests:  # throttled: back off before sending the remainder
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)

    def _transact(self, operations: Sequence[Item]) -> bool:
        """One TransactWriteItems; False when a condition failed or a concurrent transaction
        touched the same items (nothing was written either way)."""
        try:
            self._client.transact_write_items(TransactItems=list(operations))
        except self._transaction_cancelled as exc:
            reasons = exc.response.get("CancellationReasons") or []
            codes = {reason.get("Code") for reason in reasons} - {"None", None}
            if codes and codes <= {"ConditionalCheckFailed", "TransactionConflict"}:
                return False
            raise
        return True

    def _put_operation(self, item: Item, condition: str | None = "attribute_not_exists(pk)") -> Item:
        put: Item = {"TableName": self._table, "Item": item}
        if condition:
            put["ConditionExpression"] = condition
        return {"Put": put}

    def _page(self, cls: type[R], tenant_id: str, collection: str, limit: int, cursor: str | None) -> Page:
        partition = f"TENANT#{tenant_id}#{collection}"
        params: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :partition",
            "ExpressionAttributeValues": {":partition": _s(partition)},
            "ScanIndexForward": False,  # newest first
        }
        if cursor:
            params["ExclusiveStartKey"] = decode_cursor(cursor, partition)
        # One item beyond the page says whether a next page exists, so the last page never
        # carries a cursor that leads to an empty page.
        items = self._query(limit=limit + 1, **params)
        next_cursor = None
        if len(items) > limit:
            last = items[limit - 1]
            next_cursor = encode_cursor({name: last[name] for name in LIST_CURSOR_ATTRIBUTES})
        return Page(items=[_doc(item, cls) for item in items[:limit]], next_cursor=next_cursor)

    def _update_job(
        self,
        job_id: str,
        change: Callable[[Job], Job | None],
        guard: Callable[[Job], tuple[str, dict[str, str], Item]] | None = None,
    ) -> Job | None:
        """Read-modify-write one job; `change` returns None to leave it as is. `guard` adds
        the documented condition (status, epoch) to the write, which is then safe on its own
        and not only because the document is unchanged since it was read."""
        for _ in range(MAX_OPTIMISTIC_ATTEMPTS):
            item = self._get(_job_key(job_id))
            if item is None:
                return None
            updated = change(_doc(item, Job))
            if updated is None:
                return None
            condition = "#doc = :read_doc"
            names = {
                "#doc": "doc",
                "#status": "status",
                "#version": "version",
                "#current_epoch": "current_epoch",
            }
            values: Item = {
                ":read_doc": item["doc"],
                ":status": _s(updated.status.value),
                ":version": _n(updated.version),
                ":current_epoch": _n(updated.current_epoch),
                ":doc": _s(updated.model_dump_json()),
            }
            if guard is not None:
                guard_condition, guard_names, guard_values = guard(updated)
                condition += f" AND ({guard_condition})"
                names.update(guard_names)
                values.update(guard_values)
            update = (
                "SET #status = :status, #version = :version, #current_epoch = :current_epoch, #doc = :doc"
            )
            unfinished_keys = _unfinished_index_keys(updated)
            if unfinished_keys:
                update += ", gsi2pk = :gsi2pk, gsi2sk = :gsi2sk"
                values.update({":gsi2pk": unfinished_keys["gsi2pk"], ":gsi2sk": unfinished_keys["gsi2sk"]})
            else:
                update += " REMOVE gsi2pk, gsi2sk"  # leaves the sparse UNFINISHED index
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=_job_key(job_id),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except self._conditional_check_failed:
                continue  # another writer got in first: re-read and decide again
            return updated
        raise Conflict(f"job {job_id} is being updated concurrently; try again")

    # --- tenants and keys -----------------------------------------------------------------

    def put_tenant(self, tenant: Tenant) -> None:
        self._put(_tenant_item(tenant))

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        item = self._get(_tenant_key(tenant_id))
        return _doc(item, Tenant) if item else None

    def put_api_key(self, key: ApiKey) -> None:
        self._put(_api_key_item(key))

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        item = self._get(_api_key_key(key_hash))
        return _doc(item, ApiKey) if item else None

    def list_api_keys(self) -> list[ApiKey]:
        items = self._query(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :partition",
            ExpressionAttributeValues={":partition": _s(API_KEYS_PARTITION)},
        )
        return [_doc(item, ApiKey) for item in items]  # gsi1sk is the key id: ordered by id

    def revoke_api_key(self, key_id: str) -> bool:
        indexed = self._query(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :partition AND gsi1sk = :key_id",
            ExpressionAttributeValues={":partition": _s(API_KEYS_PARTITION), ":key_id": _s(key_id)},
        )
        if not indexed:
            return False
        for _ in range(MAX_OPTIMISTIC_ATTEMPTS):
            item = self._get(_key(indexed[0]))  # the index is eventually consistent; the table is not
            if item is None:
                return False
            key = _doc(item, ApiKey)
            if key.revoked_at is not None:
                return False
            revoked = key.model_copy(update={"revoked_at": utcnow()})
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=_key(item),
                    UpdateExpression="SET #doc = :doc",
                    ConditionExpression="#doc = :read_doc",
                    ExpressionAttributeNames={"#doc": "doc"},
                    ExpressionAttributeValues={
                        ":doc": _s(revoked.model_dump_json()),
                        ":read_doc": item["doc"],
                    },
                )
            except self._conditional_check_failed:
                continue
            return True
        raise Conflict(f"api key {key_id} is being updated concurrently; try again")

    # --- datasets and images --------------------------------------------------------------

    def create_dataset(self, dataset: Dataset, images: list[Image]) -> None:
        # Images never overwrite an existing one, so a failed write removes only its own.
        image_puts = [self._put_operation(_image_item(image)) for image in images]
        dataset_put = self._put_operation(_dataset_item(dataset))
        if len(image_puts) < MAX_TRANSACTION_ITEMS:
            if not self._transact([*image_puts, dataset_put]):
                raise Conflict(f"dataset {dataset.id} already exists")
            return
        # Too many for one transaction: the images go first and the dataset item last, so no
        # reader ever finds a dataset whose images are missing; a failure removes what was written.
        written: list[Item] = []
        try:
            for chunk in _chunks(image_puts, MAX_TRANSACTION_ITEMS):
                if not self._transact(chunk):
                    raise Conflict(f"dataset {dataset.id}: an image with the same id already exists")
                written.extend(_key(operation["Put"]["Item"]) for operation in chunk)
            if not self._transact([dataset_put]):
                raise Conflict(f"dataset {dataset.id} already exists")
        except BaseException:
            self._delete_keys(written)
            raise

    def add_images(self, tenant_id: str, dataset_id: str, images: list[Image]) -> Dataset:
        image_puts = [self._put_operation(_image_item(image)) for image in images]
        # A small append shares one transaction with the dataset update; a large one writes
        # its images first and moves the dataset's count and classes last.
        written_first = image_puts if len(image_puts) >= MAX_TRANSACTION_ITEMS else []
        with_dataset_update = [] if written_first else image_puts
        written: list[Item] = []
        try:
            for chunk in _chunks(written_first, MAX_TRANSACTION_ITEMS):
                if not self._transact(chunk):
                    raise Conflict(f"dataset {dataset_id}: an image with the same id already exists")
                written.extend(_key(operation["Put"]["Item"]) for operation in chunk)
            for _ in range(MAX_OPTIMISTIC_ATTEMPTS):
                item = self._get(_dataset_key(dataset_id))
                if item is None or item.get("tenant_id", {}).get("S") != tenant_id:
                    raise NotFound(f"dataset {dataset_id} not found")
                dataset = _doc(item, Dataset)
                classes = list(dict.fromkeys([*dataset.classes, *(i.label for i in images)]))
                dataset = dataset.model_copy(
                    update={"classes": classes, "image_count": dataset.image_count + len(images)}
                )
                dataset_update = {
                    "Update": {
                        "TableName": self._table,
                        "Key": _dataset_key(dataset_id),
                        "UpdateExpression": "SET #doc = :doc",
                        "ConditionExpression": "#doc = :read_doc",
                        "ExpressionAttributeNames": {"#doc": "doc"},
                        "ExpressionAttributeValues": {
                            ":doc": _s(dataset.model_dump_json()),
                            ":read_doc": item["doc"],
                        },
                    }
                }
                if self._transact([*with_dataset_update, dataset_update]):
                    return dataset
            raise Conflict(f"dataset {dataset_id} is being updated concurrently; try again")
        except BaseException:
            self._delete_keys(written)
            raise

    def get_dataset(self, tenant_id: str, dataset_id: str) -> Dataset | None:
        return self._get_owned(_dataset_key(dataset_id), Dataset, tenant_id)

    def list_datasets(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._page(Dataset, tenant_id, "DATASETS", limit, cursor)

    def _image_items(self, dataset_id: str, **params: Any) -> list[Item]:
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :images)",
            ExpressionAttributeValues={":pk": _s(f"DATASET#{dataset_id}"), ":images": _s("IMAGE#")},
            ConsistentRead=True,
            **params,
        )

    def delete_dataset(self, tenant_id: str, dataset_id: str) -> bool:
        # The dataset item goes first (conditioned on the owner), so a refused delete touches
        # nothing and a completed one is invisible before its images are removed.
        if not self._delete_if_owned(_dataset_key(dataset_id), tenant_id):
            return False
        self._delete_keys(self._image_items(dataset_id, ProjectionExpression="pk, sk"))
        return True

    def list_images(self, tenant_id: str, dataset_id: str) -> list[Image]:
        items = self._image_items(dataset_id)  # sk is IMAGE#<created_at>#<id>: oldest first
        return [_doc(item, Image) for item in items if item["tenant_id"]["S"] == tenant_id]

    # --- jobs and models ------------------------------------------------------------------

    def create_job(self, job: Job, model: Model | None) -> None:
        operations = [self._put_operation(_job_item(job))]
        if model is not None:  # an inference job runs an existing model
            operations.append(self._put_operation(_model_item(model)))
        if not self._transact(operations):
            raise Conflict(f"job {job.id} or its model {job.model_id} already exists")

    def get_job(self, tenant_id: str, job_id: str) -> Job | None:
        return self._get_owned(_job_key(job_id), Job, tenant_id)

    def get_job_any_tenant(self, job_id: str) -> Job | None:
        item = self._get(_job_key(job_id))
        return _doc(item, Job) if item else None

    def list_jobs(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._page(Job, tenant_id, "JOBS", limit, cursor)

    def list_unfinished_jobs(self) -> list[Job]:
        items = self._query(
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :partition",
            ExpressionAttributeValues={":partition": _s(UNFINISHED_PARTITION)},
        )
        return [_doc(item, Job) for item in items]

    def transition_job(
        self,
        job_id: str,
        target: JobStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> Job | None:
        allowed = sorted(status.value for status in allowed_predecessors(target))
        if not allowed:  # nothing may move to PENDING; `IN ()` is not even valid
            return None

        def move(job: Job) -> Job | None:
            if job.status.value not in allowed:
                return None
            return transitioned(job, target, error, result)

        def status_allows_target(_: Job) -> tuple[str, dict[str, str], Item]:
            placeholders = {f":allowed{i}": _s(status) for i, status in enumerate(allowed)}
            return f"#status IN ({', '.join(placeholders)})", {}, placeholders

        return self._update_job(job_id, move, status_allows_target)

    def set_launch_ref(self, job_id: str, launch_ref: str) -> None:
        self._update_job(job_id, lambda job: job.model_copy(update={"launch_ref": launch_ref}))

    def record_progress(self, job_id: str, done: int, total: int | None, unit: str) -> bool:
        # the write is conditional on the document read, so a concurrent larger count wins
        return self._update_job(job_id, lambda job: progressed(job, done, total, unit)) is not None

    def record_epoch(self, metrics: EpochMetrics, epochs: int) -> bool:
        if not self._put(_epoch_item(metrics), "attribute_not_exists(pk)"):
            return False  # a duplicate (a redelivered progress event)
        job_exists = False

        def advance(job: Job) -> Job | None:
            nonlocal job_exists
            job_exists = True
            return summarised(job, metrics, epochs)

        def only_forward(_: Job) -> tuple[str, dict[str, str], Item]:
            return "#current_epoch < :epoch", {}, {":epoch": _n(metrics.epoch)}

        self._update_job(metrics.job_id, advance, only_forward)
        return job_exists  # as the SQLite store: the epoch is kept, but a missing job is reported

    def list_epochs(self, job_id: str) -> list[EpochMetrics]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :epochs)",
            ExpressionAttributeValues={":pk": _s(f"JOB#{job_id}"), ":epochs": _s("EPOCH#")},
            ConsistentRead=True,
        )
        return [_doc(item, EpochMetrics) for item in items]  # EPOCH#<epoch:06d>: in epoch order

    def get_model(self, tenant_id: str, model_id: str) -> Model | None:
        return self._get_owned(_model_key(model_id), Model, tenant_id)

    def list_models(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._page(Model, tenant_id, "MODELS", limit, cursor)

    def update_model(self, model: Model) -> None:
        self._put(_model_item(model), "attribute_exists(pk)")  # an update never creates a model

    def delete_model(self, tenant_id: str, model_id: str) -> bool:
        return self._delete_if_owned(_model_key(model_id), tenant_id)

    # --- aliases --------------------------------------------------------------------------

    def put_alias(self, alias: Alias) -> None:
        if not self._put(_alias_item(alias), "attribute_not_exists(pk)"):
            raise Conflict(f"{alias.namespace} {alias.name!r} exists")

    def get_alias(self, tenant_id: str, namespace: str, name: str) -> Alias | None:
        item = self._get(_alias_key(tenant_id, namespace, name))
        return None if item is None else _doc(item, Alias)

    def list_aliases(self, tenant_id: str, namespace: str) -> list[Alias]:
        items = self._query(
            KeyConditionExpression="pk = :partition",
            ExpressionAttributeValues={":partition": _s(f"TENANT#{tenant_id}#ALIAS#{namespace}")},
            ConsistentRead=True,
        )
        # the sort key is the name; the API lists in creation order, as SQLite does
        return sorted((_doc(item, Alias) for item in items), key=lambda a: (a.created_at, a.name))

    def update_alias(self, alias: Alias) -> None:
        if not self._put(_alias_item(alias), "attribute_exists(pk)"):
            raise NotFound(f"{alias.namespace} {alias.name!r} not found")

    def replace_alias(self, previous: Alias, updated: Alias) -> bool:
        # items written before `updated` existed have none; the first replacement adds it,
        # so a second writer that read the same item still fails the condition
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_alias_item(updated),
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(#updated) OR #updated = :expected)"
                ),
                ExpressionAttributeNames={"#updated": "updated"},
                ExpressionAttributeValues={":expected": _s(_sortable_time(previous.updated_at))},
            )
        except self._conditional_check_failed:
            return False
        return True

    def delete_alias(self, tenant_id: str, namespace: str, name: str) -> bool:
        return self._delete_if_owned(_alias_key(tenant_id, namespace, name), tenant_id)

    def next_number(self, tenant_id: str, counter: str) -> int:
        response = self._client.update_item(
            TableName=self._table,
            Key=_counter_key(tenant_id, counter),
            UpdateExpression="ADD #value :one",
            ExpressionAttributeNames={"#value": "value"},
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["value"]["N"])

    # --- webhook deliveries ---------------------------------------------------------------

    def put_delivery(self, delivery: WebhookDelivery) -> bool:
        return self._put(_delivery_item(delivery), "attribute_not_exists(pk)")

    def update_delivery(self, delivery: WebhookDelivery) -> None:
        # The whole item is rewritten so the pending index entry follows the status (it leaves
        # gsi2 once delivered or failed); an update never creates a delivery.
        self._put(_delivery_item(delivery), "attribute_exists(pk)")

    def due_deliveries(self, limit: int) -> list[WebhookDelivery]:
        items = self._query(
            limit=limit,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :partition AND gsi2sk < :due_by",
            ExpressionAttributeValues={
                ":partition": _s(PENDING_DELIVERIES_PARTITION),
                ":due_by": _s(_sortable_time(utcnow()) + AFTER_ANY_ID),
            },
        )
        return [_doc(item, WebhookDelivery) for item in items]  # gsi2sk order: next_attempt_at

    def list_deliveries(self, tenant_id: str, job_id: str) -> list[WebhookDelivery]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :deliveries)",
            ExpressionAttributeValues={":pk": _s(f"JOB#{job_id}"), ":deliveries": _s("DELIVERY#")},
            ConsistentRead=True,
        )
        deliveries = [_doc(item, WebhookDelivery) for item in items if item["tenant_id"]["S"] == tenant_id]
        return sorted(deliveries, key=lambda delivery: delivery.created_at)

    def replace_delivery(self, previous: WebhookDelivery, updated: WebhookDelivery) -> bool:
        # items written before `version` existed have none: they count as version 0
        condition = "attribute_exists(pk) AND #version = :expected"
        if previous.version == 0:
            condition = "attribute_exists(pk) AND (attribute_not_exists(#version) OR #version = :expected)"
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_delivery_item(updated),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":expected": _n(previous.version)},
            )
        except self._conditional_check_failed:
            return False
        return True

    # --- webhook endpoints ----------------------------------------------------------------

    def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._put(_endpoint_item(endpoint))

    def get_webhook_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        return self._get_owned(_endpoint_key(tenant_id, endpoint_id), WebhookEndpoint, tenant_id)

    def list_webhook_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :endpoints)",
            ExpressionAttributeValues={
                ":pk": _s(f"TENANT#{tenant_id}#WEBHOOKS"),
                ":endpoints": _s("ENDPOINT#"),
            },
            ConsistentRead=True,
        )
        endpoints = [_doc(item, WebhookEndpoint) for item in items]
        return sorted(endpoints, key=lambda endpoint: (endpoint.created_at, endpoint.id))

    def delete_webhook_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        return self._delete_if_owned(_endpoint_key(tenant_id, endpoint_id), tenant_id)
