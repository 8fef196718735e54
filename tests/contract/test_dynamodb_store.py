"""What only the DynamoDB store has: the table's schema, the sparse indexes, the attributes that
conditions read, the chunked writes of large datasets and cursors that are table keys. The
behaviour it shares with every store is in test_job_store.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.aws_fixtures import TEST_TABLE_NAME, job_table_properties
from tests.helpers import record_job
from trainyard.adapters.aws.dynamodb_store import DynamoDbJobStore, encode_cursor
from trainyard.domain import (
    ApiKey,
    Dataset,
    DeliveryStatus,
    EpochMetrics,
    Image,
    JobStatus,
    WebhookDelivery,
    utcnow,
)
from trainyard.errors import BadRequest, Conflict, NotFound


@pytest.fixture
def store(dynamodb_client: Any) -> DynamoDbJobStore:
    return DynamoDbJobStore(TEST_TABLE_NAME, client=dynamodb_client)


def raw_item(client: Any, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=TEST_TABLE_NAME, Key={"pk": {"S": pk}, "sk": {"S": sk}})[
        "Item"
    ]
    return item


def item_count(client: Any, pk: str) -> int:
    count: int = client.query(
        TableName=TEST_TABLE_NAME,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        Select="COUNT",
    )["Count"]
    return count


def images(dataset_id: str, count: int, tenant: str = "t1", start: int = 0) -> list[Image]:
    return [
        Image(
            id=f"img_{dataset_id}_{i:04d}",
            tenant_id=tenant,
            dataset_id=dataset_id,
            label=f"class_{i % 3}",
            split=None,
            blob_key=f"k{i}",
            width=4,
            height=4,
        )
        for i in range(start, start + count)
    ]


def test_the_moto_table_is_the_templates_job_table(dynamodb_client: Any) -> None:
    expected = job_table_properties()
    table = dynamodb_client.describe_table(TableName=TEST_TABLE_NAME)["Table"]

    def by_name(entries: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
        return sorted(entries, key=lambda entry: entry[name])

    assert by_name(table["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert table["KeySchema"] == expected["KeySchema"]
    assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"]
    indexes = {
        index["IndexName"]: (index["KeySchema"], index["Projection"])
        for index in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        index["IndexName"]: (index["KeySchema"], index["Projection"])
        for index in expected["GlobalSecondaryIndexes"]
    }
    ttl = dynamodb_client.describe_time_to_live(TableName=TEST_TABLE_NAME)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == expected["TimeToLiveSpecification"]["AttributeName"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_importing_the_store_does_not_import_boto3() -> None:
    # A Lambda cold start that never touches the store must not pay for boto3.
    probe = "import sys, trainyard.adapters.aws.dynamodb_store; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_jobs_keep_the_keys_of_the_design_and_the_attributes_conditions_read(
    store: DynamoDbJobStore, dynamodb_client: Any
) -> None:
    job = record_job(store, tenant="t1")
    store.transition_job(job.id, JobStatus.RUNNING)
    store.record_epoch(EpochMetrics(job_id=job.id, epoch=3, loss=0.4), 5)
    current = store.get_job("t1", job.id)
    assert current is not None
    item = raw_item(dynamodb_client, f"JOB#{job.id}", "JOB")
    assert item["gsi1pk"]["S"] == "TENANT#t1#JOBS"
    assert item["gsi1sk"]["S"].endswith(f"#{job.id}")
    assert item["status"]["S"] == "RUNNING" and item["tenant_id"]["S"] == "t1"
    assert item["version"]["N"] == str(current.version) == "2"
    assert item["current_epoch"]["N"] == "3"
    assert raw_item(dynamodb_client, f"JOB#{job.id}", "EPOCH#000003")["doc"]["S"]
    model = raw_item(dynamodb_client, f"MODEL#{job.model_id}", "MODEL")
    assert model["gsi1pk"]["S"] == "TENANT#t1#MODELS"


def test_a_terminal_job_leaves_the_unfinished_index(store: DynamoDbJobStore, dynamodb_client: Any) -> None:
    finishing, still_running = record_job(store, tenant="t1"), record_job(store, tenant="t2")
    assert {j.id for j in store.list_unfinished_jobs()} == {finishing.id, still_running.id}

    running = store.transition_job(finishing.id, JobStatus.RUNNING)
    assert running is not None
    item = raw_item(dynamodb_client, f"JOB#{finishing.id}", "JOB")
    assert item["gsi2pk"]["S"] == "UNFINISHED"
    # keyed by the latest update, which is what the reaper's staleness check reads
    assert item["gsi2sk"]["S"] == f"{running.updated_at.strftime('%Y-%m-%dT%H:%M:%S.%f')}#{finishing.id}"

    assert store.transition_job(finishing.id, JobStatus.SUCCEEDED) is not None
    item = raw_item(dynamodb_client, f"JOB#{finishing.id}", "JOB")
    assert "gsi2pk" not in item and "gsi2sk" not in item
    assert [j.id for j in store.list_unfinished_jobs()] == [still_running.id]


def test_concurrent_epochs_and_a_transition_lose_no_update(store: DynamoDbJobStore) -> None:
    # Each write rewrites the whole document; the doc condition must make a stale writer retry.
    job = record_job(store, tenant="t1")
    barrier = threading.Barrier(11)

    def epoch(number: int) -> None:
        barrier.wait()
        store.record_epoch(EpochMetrics(job_id=job.id, epoch=number, loss=1 / number), 10)

    def start() -> None:
        barrier.wait()
        store.transition_job(job.id, JobStatus.RUNNING)

    threads = [threading.Thread(target=epoch, args=(n,)) for n in range(1, 11)]
    threads.append(threading.Thread(target=start))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.get_job("t1", job.id)
    assert final is not None
    assert (
        final.status is JobStatus.RUNNING and final.current_epoch == 10 and final.loss == pytest.approx(0.1)
    )
    assert [e.epoch for e in store.list_epochs(job.id)] == list(range(1, 11))


def test_a_dataset_too_large_for_one_transaction_is_written_whole(
    store: DynamoDbJobStore, dynamodb_client: Any
) -> None:
    written = images("ds_big", 250)
    store.create_dataset(
        Dataset(id="ds_big", tenant_id="t1", name="d", classes=["class_0"], image_count=250), written
    )
    assert [i.id for i in store.list_images("t1", "ds_big")] == [i.id for i in written]

    updated = store.add_images("t1", "ds_big", images("ds_big", 120, start=250))
    assert updated.image_count == 370 and set(updated.classes) == {"class_0", "class_1", "class_2"}
    assert len(store.list_images("t1", "ds_big")) == 370

    assert store.delete_dataset("t1", "ds_big")
    assert item_count(dynamodb_client, "DATASET#ds_big") == 0


def test_a_failed_large_dataset_write_removes_the_images_it_wrote(
    store: DynamoDbJobStore, dynamodb_client: Any
) -> None:
    dataset = Dataset(id="ds_dup", tenant_id="t1", name="d", classes=["a"], image_count=1)
    store.create_dataset(dataset, images("ds_dup", 1))
    with pytest.raises(Conflict):  # the dataset item is written last, and it already exists
        store.create_dataset(dataset, images("ds_dup", 150, start=1))
    assert item_count(dynamodb_client, "DATASET#ds_dup") == 2  # the dataset and its one image


def test_appending_to_another_tenants_dataset_writes_nothing(
    store: DynamoDbJobStore, dynamodb_client: Any
) -> None:
    store.create_dataset(Dataset(id="ds_t1", tenant_id="t1", name="d", classes=[], image_count=0), [])
    for count in (2, 120):  # the one-transaction path and the chunked path
        with pytest.raises(NotFound):
            store.add_images("t2", "ds_t1", images("ds_t1", count, tenant="t2"))
    assert item_count(dynamodb_client, "DATASET#ds_t1") == 1


def test_cursors_are_scoped_to_their_list(store: DynamoDbJobStore) -> None:
    for _ in range(3):
        record_job(store, tenant="t1")
    exact = store.list_jobs("t1", 3, None)
    assert len(exact.items) == 3 and exact.next_cursor is None  # no cursor to an empty page
    first = store.list_jobs("t1", 2, None)
    assert first.next_cursor is not None
    with pytest.raises(BadRequest):  # another tenant replaying t1's cursor
        store.list_jobs("t2", 2, first.next_cursor)
    with pytest.raises(BadRequest):  # a jobs cursor on the models list
        store.list_models("t1", 2, first.next_cursor)
    with pytest.raises(BadRequest):  # well-formed base64 JSON that is not a key
        store.list_jobs("t1", 2, encode_cursor({"pk": {"S": "x"}}))


def test_due_deliveries_come_in_next_attempt_order_and_leave_once_settled(
    store: DynamoDbJobStore, dynamodb_client: Any
) -> None:
    now = utcnow()

    def delivery(delivery_id: str, due_in: timedelta) -> WebhookDelivery:
        return WebhookDelivery(
            id=delivery_id,
            tenant_id="t1",
            job_id="job_1",
            url="http://x",
            event_type="job.succeeded",
            payload={},
            next_attempt_at=now + due_in,
        )

    later, sooner, future = (
        delivery("msg_later", timedelta(seconds=-1)),
        delivery("msg_sooner", timedelta(seconds=-5)),
        delivery("msg_future", timedelta(hours=1)),
    )
    for record in (later, sooner, future):
        assert store.put_delivery(record)
    assert [d.id for d in store.due_deliveries(10)] == ["msg_sooner", "msg_later"]
    assert [d.id for d in store.due_deliveries(1)] == ["msg_sooner"]

    store.update_delivery(sooner.model_copy(update={"status": DeliveryStatus.DELIVERED, "attempts": 1}))
    assert [d.id for d in store.due_deliveries(10)] == ["msg_later"]
    assert "gsi2pk" not in raw_item(dynamodb_client, "JOB#job_1", "DELIVERY#msg_sooner")
    delivered = [d for d in store.list_deliveries("t1", "job_1") if d.id == "msg_sooner"]
    assert delivered[0].status is DeliveryStatus.DELIVERED and delivered[0].attempts == 1


def test_api_keys_are_found_by_hash_listed_by_id_and_revoked_once(store: DynamoDbJobStore) -> None:
    for key_id in ("key_b", "key_a"):
        store.put_api_key(ApiKey(id=key_id, tenant_id="t1", key_hash=f"hash_{key_id}", prefix="ty_"))
    assert [k.id for k in store.list_api_keys()] == ["key_a", "key_b"]
    assert store.revoke_api_key("key_a")
    assert not store.revoke_api_key("key_a")
    assert not store.revoke_api_key("key_missing")
    revoked = store.find_api_key("hash_key_a")
    assert revoked is not None and revoked.revoked_at is not None
    untouched = store.find_api_key("hash_key_b")
    assert untouched is not None and untouched.revoked_at is None
