"""The JobStore's webhook records on every adapter (SQLite, DynamoDB on moto): the
compare-and-set write that claims delivery attempts, and webhook endpoints scoped by tenant."""

from __future__ import annotations

import threading

from tests.contract.test_job_store import store  # noqa: F401 (the parametrised adapter fixture)
from trainyard.domain import DeliveryStatus, WebhookDelivery, WebhookEndpoint, utcnow
from trainyard.ports import JobStore


def delivery(delivery_id: str = "msg_1") -> WebhookDelivery:
    return WebhookDelivery(
        id=delivery_id,
        tenant_id="t1",
        job_id="job_1",
        url="https://x",
        event_type="job.succeeded",
        payload={},
    )


def test_replace_delivery_writes_only_over_the_version_it_read(store: JobStore) -> None:  # noqa: F811
    original = delivery()
    assert store.put_delivery(original)
    claimed = original.model_copy(update={"attempts": 1, "version": 1})
    assert store.replace_delivery(original, claimed)
    stale = original.model_copy(update={"attempts": 7, "version": 1})
    assert not store.replace_delivery(original, stale)  # read version 0; it is 1 now
    [stored] = store.list_deliveries("t1", "job_1")
    assert stored.attempts == 1 and stored.version == 1

    done = claimed.model_copy(update={"status": DeliveryStatus.DELIVERED, "version": 2})
    assert store.replace_delivery(claimed, done)
    assert store.due_deliveries(10) == []  # settled deliveries leave the due list
    assert not store.replace_delivery(delivery("msg_absent"), delivery("msg_absent"))  # never creates


def test_replace_delivery_lets_one_of_many_concurrent_claims_win(store: JobStore) -> None:  # noqa: F811
    original = delivery()
    store.put_delivery(original)
    wins: list[bool] = []

    def claim(worker: int) -> None:
        claimed = original.model_copy(update={"version": 1, "last_error": f"worker {worker}"})
        wins.append(store.replace_delivery(original, claimed))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_webhook_endpoints_are_upserted_listed_and_deleted_per_tenant(store: JobStore) -> None:  # noqa: F811
    first = WebhookEndpoint(id="we_a", tenant_id="t1", url="https://a.example/h")
    second = WebhookEndpoint(id="we_b", tenant_id="t1", url="https://b.example/h")
    store.put_webhook_endpoint(first)
    store.put_webhook_endpoint(second)
    store.put_webhook_endpoint(WebhookEndpoint(id="we_c", tenant_id="t2", url="https://c.example/h"))
    assert [e.id for e in store.list_webhook_endpoints("t1")] == ["we_a", "we_b"]
    assert store.get_webhook_endpoint("t2", "we_a") is None  # another tenant's reads as absent

    disabled = first.model_copy(update={"disabled_at": utcnow(), "disabled_reason": "410"})
    store.put_webhook_endpoint(disabled)  # replaces
    got = store.get_webhook_endpoint("t1", "we_a")
    assert got is not None and got.disabled_reason == "410" and got.disabled_at is not None

    assert not store.delete_webhook_endpoint("t2", "we_a")
    assert store.delete_webhook_endpoint("t1", "we_a")
    assert not store.delete_webhook_endpoint("t1", "we_a")
    assert [e.id for e in store.list_webhook_endpoints("t1")] == ["we_b"]
