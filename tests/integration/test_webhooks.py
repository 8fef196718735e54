from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.helpers import body_json, record_job, webhook_receiver
from trainyard.bootstrap import Services
from trainyard.domain import JobStatus
from trainyard.services.webhooks import verify


def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_terminal_status_is_delivered_signed(client: TestClient, services: Services) -> None:
    with webhook_receiver() as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.jobs.transition(job.id, JobStatus.RUNNING)  # not terminal: no webhook
        services.jobs.transition(job.id, JobStatus.FAILED, error="boom")
        assert receiver.received.wait(10)
    request = receiver.requests[0]
    assert len(receiver.requests) == 1
    secret = client.get("/v1/webhook-secret").json()["secret"]
    assert verify(secret, request["headers"], request["body"])
    payload = body_json(request)
    assert payload["type"] == "job.failed" and payload["data"]["id"] == job.id
    assert payload["data"]["error"] == "boom" and payload["data"]["status"] == "FAILED"


def test_failed_attempts_are_retried_logged_and_sent_once_when_accepted(
    client: TestClient, services: Services
) -> None:
    with webhook_receiver(script=[500, 503]) as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)  # duplicate terminal event
        assert receiver.received.wait(15)
        time.sleep(0.5)
    assert [r["answered"] for r in receiver.requests] == [500, 503, 200]
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
    log = client.get(f"/v1/jobs/{job.id}/webhooks").json()["items"]
    assert len(log) == 1 and log[0]["status"] == "delivered" and log[0]["attempts"] == 3
    assert [a["status_code"] for a in log[0]["attempt_log"]] == [500, 503, 200]


def test_delivery_gives_up_after_max_attempts(services: Services, client: TestClient) -> None:
    with webhook_receiver(script=[500] * 20) as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.jobs.transition(job.id, JobStatus.CANCELLED)
        wait_for(lambda: services.webhooks.deliveries("default", job.id)[0].status.value == "failed", 30)
    assert len(receiver.requests) == services.webhooks.max_attempts == 6


def test_rotating_the_secret_changes_the_signature_key(client: TestClient) -> None:
    first = client.get("/v1/webhook-secret").json()["secret"]
    rotated = client.post("/v1/webhook-secret/rotate").json()["secret"]
    assert rotated != first and rotated.startswith("whsec_")
    assert client.get("/v1/webhook-secret").json()["secret"] == rotated
