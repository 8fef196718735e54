"""One behaviour suite for every JobStore adapter (SQLite, and DynamoDB on moto with the table
built from template.yaml). Conditional transitions are checked under concurrent writers too."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.aws_fixtures import TEST_TABLE_NAME
from tests.helpers import record_job
from trainyard.adapters.aws.dynamodb_store import DynamoDbJobStore
from trainyard.adapters.local.sqlite_store import SqliteJobStore
from trainyard.domain import (
    Alias,
    Dataset,
    EpochMetrics,
    Image,
    Job,
    JobStatus,
    JobType,
    WebhookDelivery,
)
from trainyard.errors import BadRequest, Conflict, NotFound
from trainyard.ports import JobStore, iter_pages

# Each adapter is built from the test's request (for the fixtures it needs) and a temp dir.
ADAPTERS: dict[str, Callable[[pytest.FixtureRequest, Path], JobStore]] = {
    "sqlite": lambda request, tmp: SqliteJobStore(tmp / "store.db"),
    "dynamodb": lambda request, tmp: DynamoDbJobStore(
        TEST_TABLE_NAME, client=request.getfixturevalue("dynamodb_client")
    ),
}


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    return ADAPTERS[request.param](request, tmp_path)


def make_job(store: JobStore, tenant: str = "t1") -> Job:
    return record_job(store, tenant=tenant)


def test_forward_transitions_apply_and_stale_ones_do_not(store: JobStore) -> None:
    job = make_job(store)
    running = store.transition_job(job.id, JobStatus.RUNNING)
    assert running is not None and running.status is JobStatus.RUNNING
    assert running.started_at is not None and running.version == job.version + 1
    assert store.transition_job(job.id, JobStatus.RUNNING) is None  # duplicate
    assert store.transition_job(job.id, JobStatus.DOWNLOADED) is None  # late, older event
    assert store.get_job("t1", job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    done = store.transition_job(job.id, JobStatus.SUCCEEDED)
    assert done is not None and done.finished_at is not None
    assert store.transition_job(job.id, JobStatus.FAILED, error="late") is None
    final = store.get_job("t1", job.id)
    assert final is not None and final.status is JobStatus.SUCCEEDED and final.error is None


def test_failure_records_its_reason(store: JobStore) -> None:
    job = make_job(store)
    failed = store.transition_job(job.id, JobStatus.FAILED, error="out of memory")
    assert failed is not None and failed.error == "out of memory" and failed.finished_at


def test_concurrent_terminal_writers_exactly_one_wins(store: JobStore) -> None:
    for _ in range(5):
        job = make_job(store)
        targets = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED] * 4
        results: list[Job | None] = []
        barrier = threading.Barrier(len(targets))

        def write(
            target: JobStatus, job_id: str, barrier: threading.Barrier, results: list[Job | None]
        ) -> None:
            barrier.wait()
            results.append(store.transition_job(job_id, target))

        threads = [threading.Thread(target=write, args=(t, job.id, barrier, results)) for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert store.get_job("t1", job.id).status is winners[0].status  # type: ignore[union-attr]


def test_epochs_are_recorded_once_and_never_rewind_the_summary(store: JobStore) -> None:
    job = make_job(store)
    assert store.record_epoch(EpochMetrics(job_id=job.id, epoch=2, loss=0.5), 5)
    assert store.record_epoch(EpochMetrics(job_id=job.id, epoch=1, loss=0.9), 5)  # late
    assert not store.record_epoch(EpochMetrics(job_id=job.id, epoch=2, loss=0.1), 5)  # duplicate
    current = store.get_job("t1", job.id)
    assert current is not None and current.current_epoch == 2 and current.loss == 0.5
    assert [(e.epoch, e.loss) for e in store.list_epochs(job.id)] == [(1, 0.9), (2, 0.5)]


def test_records_are_invisible_to_other_tenants(store: JobStore) -> None:
    job = make_job(store, tenant="t1")
    dataset = Dataset(id="ds_x", tenant_id="t1", name="d", classes=["a", "b"], image_count=0)
    store.create_dataset(dataset, [])
    assert store.get_job("t2", job.id) is None
    assert store.get_model("t2", job.model_id) is None
    assert store.get_dataset("t2", "ds_x") is None
    assert store.list_jobs("t2", 10, None).items == []
    assert not store.delete_dataset("t2", "ds_x") and not store.delete_model("t2", job.model_id)
    assert store.get_dataset("t1", "ds_x") is not None


def test_a_refused_delete_leaves_the_images(store: JobStore) -> None:
    dataset = Dataset(id="ds_y", tenant_id="t1", name="d", classes=["a", "b"], image_count=1)
    image = Image(
        id="img_y", tenant_id="t1", dataset_id="ds_y", label="a", split=None, blob_key="k", width=1, height=1
    )
    store.create_dataset(dataset, [image])
    assert not store.delete_dataset("t2", "ds_y")
    assert [i.id for i in store.list_images("t1", "ds_y")] == ["img_y"]


def test_pagination_walks_every_record_once_newest_first(store: JobStore) -> None:
    created = [make_job(store).id for _ in range(7)]
    first = store.list_jobs("t1", 3, None)
    assert len(first.items) == 3 and first.next_cursor
    seen = [j.id for j in iter_pages(lambda c: store.list_jobs("t1", 3, c))]
    assert sorted(seen) == sorted(created) and len(seen) == 7
    assert seen == sorted(seen, key=lambda i: created.index(i), reverse=True)
    with pytest.raises(BadRequest):
        store.list_jobs("t1", 3, "not-a-cursor")


def test_dataset_and_images_in_one_write_and_appends(store: JobStore) -> None:
    dataset = Dataset(id="ds_1", tenant_id="t1", name="d", classes=["a", "b"], image_count=2)
    images = [
        Image(
            id=f"img_{i}",
            tenant_id="t1",
            dataset_id="ds_1",
            label=label,
            split=None,
            blob_key=f"k{i}",
            width=4,
            height=4,
        )
        for i, label in enumerate("ab")
    ]
    store.create_dataset(dataset, images)
    more = [
        Image(
            id="img_9",
            tenant_id="t1",
            dataset_id="ds_1",
            label="c",
            split="val",
            blob_key="k9",
            width=4,
            height=4,
        )
    ]
    updated = store.add_images("t1", "ds_1", more)
    assert updated.classes == ["a", "b", "c"] and updated.image_count == 3
    assert [i.id for i in store.list_images("t1", "ds_1")] == ["img_0", "img_1", "img_9"]
    assert store.delete_dataset("t1", "ds_1")
    assert store.list_images("t1", "ds_1") == []


def test_deliveries_are_created_once_per_id(store: JobStore) -> None:
    delivery = WebhookDelivery(
        id="msg_1", tenant_id="t1", job_id="job_1", url="http://x", event_type="job.succeeded", payload={}
    )
    assert store.put_delivery(delivery)
    assert not store.put_delivery(delivery)
    assert [d.id for d in store.due_deliveries(10)] == ["msg_1"]
    assert [d.id for d in store.list_deliveries("t1", "job_1")] == ["msg_1"]
    assert store.list_deliveries("t2", "job_1") == []


def test_a_second_job_with_the_same_id_is_a_conflict(store: JobStore) -> None:
    # Job ids can derive from an idempotency key: two racing requests must not both record one.
    job = make_job(store)
    model = store.get_model("t1", job.model_id)
    assert model is not None
    with pytest.raises(Conflict):
        store.create_job(job, model)
    assert [j.id for j in store.list_jobs("t1", 10, None).items] == [job.id]


def test_an_inference_job_is_recorded_alone_and_succeeds_with_its_result(store: JobStore) -> None:
    trained = make_job(store)
    job = trained.model_copy(update={"id": "job_infer", "type": JobType.INFER, "dataset_id": None})
    store.create_job(job, None)  # it runs trained's model; no model is created
    assert store.get_job("t1", "job_infer") is not None
    assert len(list(iter_pages(lambda cursor: store.list_models("t1", 100, cursor)))) == 1
    result = {"files": {"json": "predictions.json"}, "frames": {"total": 3}}
    done = store.transition_job("job_infer", JobStatus.SUCCEEDED, result=result)
    assert done is not None and done.result == result
    assert store.get_job("t1", "job_infer").result == result  # type: ignore[union-attr]


def test_progress_moves_forward_only_and_stops_at_the_end(store: JobStore) -> None:
    job = make_job(store)
    assert store.record_progress(job.id, 5, 20, "frames")
    assert not store.record_progress(job.id, 3, 20, "frames")  # late
    assert not store.record_progress(job.id, 5, 20, "frames")  # redelivered
    assert store.record_progress(job.id, 20, 20, "frames")
    store.transition_job(job.id, JobStatus.CANCELLED)
    assert not store.record_progress(job.id, 25, 30, "frames")  # a finished job keeps its figures
    final = store.get_job("t1", job.id)
    assert final is not None and (final.progress_done, final.progress_total, final.progress_unit) == (
        20,
        20,
        "frames",
    )
    assert not store.record_progress("job_missing", 1, 2, "frames")


def test_aliases_are_unique_per_tenant_and_namespace_and_listed_oldest_first(store: JobStore) -> None:
    first = Alias(tenant_id="t1", namespace="tag", name="cat", target="mdl_1", data={"positive": ["a"]})
    store.put_alias(first)
    with pytest.raises(Conflict):
        store.put_alias(first.model_copy(update={"target": "mdl_2"}))
    store.put_alias(Alias(tenant_id="t1", namespace="tag", name="bird", target="mdl_3"))
    store.put_alias(Alias(tenant_id="t2", namespace="tag", name="cat", target="mdl_9"))  # other tenant
    store.put_alias(Alias(tenant_id="t1", namespace="image", name="cat", target="img_1"))  # other namespace
    assert [a.name for a in store.list_aliases("t1", "tag")] == ["cat", "bird"]
    got = store.get_alias("t1", "tag", "cat")
    assert got is not None and got.target == "mdl_1" and got.data == {"positive": ["a"]}
    assert store.get_alias("t2", "tag", "cat").target == "mdl_9"  # type: ignore[union-attr]
    assert store.get_alias("t1", "tag", "dog") is None

    store.update_alias(got.model_copy(update={"data": {"positive": ["a", "b"]}}))
    assert store.get_alias("t1", "tag", "cat").data == {"positive": ["a", "b"]}  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        store.update_alias(Alias(tenant_id="t1", namespace="tag", name="dog", target="x"))

    assert store.delete_alias("t1", "tag", "cat")
    assert not store.delete_alias("t1", "tag", "cat")
    assert store.get_alias("t1", "tag", "cat") is None
    assert store.get_alias("t2", "tag", "cat") is not None


def test_replacing_an_alias_is_compare_and_set_so_one_of_two_concurrent_takers_wins(
    store: JobStore,
) -> None:
    """Two retries that found the same stale idempotency claim both try to take it over:
    exactly one write lands; the other learns it lost and changes nothing."""
    stale = datetime(2024, 1, 1, tzinfo=UTC)
    store.put_alias(
        Alias(
            tenant_id="t1", namespace="claims", name="key", target="fp", data={"by": "dead"}, updated_at=stale
        )
    )
    store.put_alias(Alias(tenant_id="t2", namespace="claims", name="key", target="fp", updated_at=stale))
    read = store.get_alias("t1", "claims", "key")
    assert read is not None and read.updated_at == stale
    takers = [
        read.model_copy(
            update={"data": {"by": f"taker {n}"}, "updated_at": stale + timedelta(hours=1, seconds=n)}
        )
        for n in range(2)
    ]
    barrier = threading.Barrier(len(takers))
    won: dict[str, bool] = {}

    def take(taker: Alias) -> None:
        barrier.wait()
        won[taker.data["by"]] = store.replace_alias(read, taker)

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won.values()) == [False, True]
    winner = next(t for t in takers if won[t.data["by"]])
    held = store.get_alias("t1", "claims", "key")
    assert held is not None and held.data == winner.data and held.updated_at == winner.updated_at
    assert store.get_alias("t2", "claims", "key").data == {}  # type: ignore[union-attr]  # other tenant

    # the stale read keeps losing; a fresh read of the winner's write goes through
    assert not store.replace_alias(read, read.model_copy(update={"updated_at": stale + timedelta(hours=2)}))
    done = held.model_copy(
        update={"data": {"by": "done"}, "updated_at": held.updated_at + timedelta(seconds=5)}
    )
    assert store.replace_alias(held, done)
    assert store.get_alias("t1", "claims", "key").data == {"by": "done"}  # type: ignore[union-attr]
    assert store.delete_alias("t1", "claims", "key")
    assert not store.replace_alias(done, done.model_copy(update={"updated_at": stale + timedelta(hours=3)}))
    assert store.get_alias("t1", "claims", "key") is None  # a replacement never recreates it


def test_numbers_count_up_per_tenant_and_counter_under_concurrent_callers(store: JobStore) -> None:
    assert store.next_number("t1", "model") == 1
    assert store.next_number("t1", "model") == 2
    assert store.next_number("t1", "results") == 1
    assert store.next_number("t2", "model") == 1
    drawn: list[int] = []
    lock = threading.Lock()

    def draw() -> None:
        for _ in range(5):
            number = store.next_number("t1", "model")
            with lock:
                drawn.append(number)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(drawn) == list(range(3, 23))
