"""Webhook reliability (issue 7): the retry schedule, per-endpoint secrets and their rotation,
410 Gone disabling an endpoint, the delivery log and redelivery, and the fault test (a receiver
answering 500, then timing out, then recovering: it sees the message accepted exactly once).

A real app with its delivery worker and a real HTTP receiver on loopback; the retry schedule
is shrunk to fractions of a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import QuietHandler, record_job, serve_locally
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import DeliveryStatus, JobStatus, WebhookDelivery, utcnow
from trainyard.services.webhooks import verify
from trainyard.settings import STANDARD_WEBHOOK_RETRY_SCHEDULE, Settings

TIMEOUT = 0.5  # webhook_timeout_seconds in these tests
SCHEDULE = [0.1, 0.2, 0.3, 0.4]  # 5 attempts


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        webhook_retry_schedule_seconds=SCHEDULE,
        webhook_timeout_seconds=TIMEOUT,
        allow_loopback_urls=True,
    )


@pytest.fixture
def services(settings: Settings) -> Services:
    return bootstrap(settings)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    key = services.tenants.ensure_default_key(None, services.settings.home / "api_key")
    with TestClient(create_app(services, background_work=True)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {key}"
        yield test_client


@dataclass
class Receiver:
    """Answers each request with the next action of its script: an HTTP status, or "hang"
    (sleeps past the sender's timeout, then answers 200 to nobody); 200 once it runs out.
    `accepted` is what a de-duplicating receiver processes: webhook-ids it answered 2xx to."""

    url: str = ""
    script: list[int | str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for_requests(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} requests, expected {count}"
            time.sleep(0.02)


@contextmanager
def receiver(script: list[int | str] | None = None) -> Iterator[Receiver]:
    state = Receiver(script=list(script or []))

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                action = state.script.pop(0) if state.script else 200
                state.requests.append({"headers": headers, "body": body, "action": action})
            if action == "hang":
                time.sleep(TIMEOUT * 3)  # the sender has given up by now
                return
            assert isinstance(action, int)
            self.send_response(action)
            if 300 <= action < 400:
                self.send_header("location", state.url + "/elsewhere")
            self.end_headers()
            if 200 <= action < 300:
                with state.lock:
                    if headers["webhook-id"] not in state.accepted:
                        state.accepted.append(headers["webhook-id"])

    with serve_locally(Handler) as base_url:
        state.url = f"{base_url}/hook"
        yield state


def wait_for_delivery(client: TestClient, job_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        items = client.get(f"/v1/jobs/{job_id}/webhooks").json()["items"]
        if items and items[0]["status"] == status:
            return dict(items[0])
        assert time.monotonic() < deadline, f"delivery not {status}: {items}"
        time.sleep(0.05)


# --- the schedule ------------------------------------------------------------------------------


def test_the_default_schedule_is_standard_webhooks_spread_over_about_three_days() -> None:
    delays = Settings().webhook_retry_delays
    assert delays[:6] == (5, 300, 1800, 7200, 18000, 36000)  # Standard Webhooks' own steps
    assert delays == STANDARD_WEBHOOK_RETRY_SCHEDULE and len(delays) + 1 == 12
    assert timedelta(days=2.5) < timedelta(seconds=sum(delays)) < timedelta(days=3.5)


def test_the_schedule_comes_from_the_environment_and_the_older_settings_still_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINYARD_WEBHOOK_RETRY_SCHEDULE_SECONDS", "[1, 2.5, 60]")
    assert Settings().webhook_retry_delays == (1, 2.5, 60)
    monkeypatch.setenv("TRAINYARD_WEBHOOK_MAX_ATTEMPTS", "3")  # caps the schedule
    assert Settings().webhook_retry_delays == (1, 2.5)
    monkeypatch.delenv("TRAINYARD_WEBHOOK_RETRY_SCHEDULE_SECONDS")
    monkeypatch.delenv("TRAINYARD_WEBHOOK_MAX_ATTEMPTS")
    monkeypatch.setenv("TRAINYARD_WEBHOOK_BACKOFF_SECONDS", "2")  # exponential, 6 attempts
    assert Settings().webhook_retry_delays == (2, 4, 8, 16, 32)


def test_a_failed_attempt_is_rescheduled_by_the_schedule_with_jitter(services: Services) -> None:
    services.webhooks._delays = (100.0,)  # one retry, 100 s after the first attempt
    with receiver(script=[500]) as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.FAILED, error="boom")
        before = utcnow()
        assert services.webhooks.deliver_due() == 1
    [delivery] = services.webhooks.deliveries("default", job.id)
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 80 <= wait <= 121  # 100 s ± 20% jitter
    assert services.webhooks.deliver_due() == 0  # not due yet


# --- the fault test ----------------------------------------------------------------------------


def test_a_receiver_failing_then_timing_out_then_recovering_gets_the_message_exactly_once(
    client: TestClient, services: Services
) -> None:
    with receiver(script=[500, "hang", 200]) as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)  # a duplicate terminal event
        delivery = wait_for_delivery(client, job.id, "delivered")
        time.sleep(sum(SCHEDULE) + TIMEOUT)  # long enough for any further, wrong, attempt

    assert [r["action"] for r in hook.requests] == [500, "hang", 200]
    ids = {r["headers"]["webhook-id"] for r in hook.requests}
    assert ids == {delivery["id"]} and hook.accepted == [delivery["id"]]  # once, by webhook-id
    secret = client.get("/v1/webhook-secret").json()["secret"]
    assert all(verify(secret, r["headers"], r["body"]) for r in hook.requests)
    # the log shows every attempt: the 500, the timeout (no status), the success
    log = delivery["attempt_log"]
    assert [entry["status_code"] for entry in log] == [500, None, 200]
    assert "500" in log[0]["error"] and "Timeout" in log[1]["error"] and log[2]["error"] is None
    assert delivery["attempts"] == 3 and delivery["delivered_at"] is not None
    assert all(entry["at"] and entry["duration_ms"] >= 0 for entry in log)
    assert log[1]["duration_ms"] >= TIMEOUT * 1000 * 0.9


def test_redirects_are_not_followed_and_the_delivery_gives_up_after_the_schedule(
    client: TestClient, services: Services
) -> None:
    with receiver(script=[302] + [500] * 10) as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.CANCELLED)
        delivery = wait_for_delivery(client, job.id, "failed")
    assert len(hook.requests) == len(SCHEDULE) + 1  # no request to the redirect's target
    assert all(r["headers"]["webhook-id"] == delivery["id"] for r in hook.requests)
    assert "redirects are not followed" in delivery["attempt_log"][0]["error"]
    assert [e["status_code"] for e in delivery["attempt_log"]] == [302] + [500] * len(SCHEDULE)


def test_two_workers_cannot_send_the_same_attempt(services: Services) -> None:
    with receiver() as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        [due] = services.store.due_deliveries(10)
        results: list[WebhookDelivery | None] = []
        workers = [
            threading.Thread(target=lambda: results.append(services.webhooks.attempt(due))) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len(hook.requests) == 1  # one claimed it; the others read a stale version
    assert sum(result is not None for result in results) == 1


# --- endpoints: own secrets, rotation, 410 -----------------------------------------------------


def test_a_registered_endpoint_signs_with_its_own_secret_and_rotation_keeps_the_old_one_for_a_while(
    client: TestClient, services: Services
) -> None:
    with receiver() as hook:
        created = client.post("/v1/webhook-endpoints", json={"url": hook.url})
        assert created.status_code == 201, created.text
        endpoint = created.json()
        first = endpoint["secret"]
        assert first.startswith("whsec_") and endpoint["status"] == "enabled"
        # never shown again, not in the list either
        assert "secret" not in client.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
        assert [e["id"] for e in client.get("/v1/webhook-endpoints").json()["items"]] == [endpoint["id"]]
        assert first not in client.get("/v1/webhook-endpoints").text
        again = client.post("/v1/webhook-endpoints", json={"url": hook.url})
        assert again.status_code == 200 and "secret" not in again.json()  # same endpoint, same secret

        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        hook.wait_for_requests(1)
        tenant_secret = client.get("/v1/webhook-secret").json()["secret"]
        request = hook.requests[0]
        assert verify(first, request["headers"], request["body"])
        assert not verify(tenant_secret, request["headers"], request["body"])

        rotated = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate").json()
        second = rotated["secret"]
        assert second != first
        other = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(other.id, JobStatus.FAILED, error="x")
        hook.wait_for_requests(2)
    request = hook.requests[1]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2  # both, in the grace period
    assert verify(second, request["headers"], request["body"]) and verify(
        first, request["headers"], request["body"]
    )


def test_an_unknown_field_or_a_bad_url_is_refused_and_nothing_is_registered(client: TestClient) -> None:
    assert (
        client.post("/v1/webhook-endpoints", json={"url": "https://example.com/h", "x": 1}).status_code == 422
    )
    bad = client.post("/v1/webhook-endpoints", json={"url": "ftp://example.com/h"})
    assert bad.status_code == 422 and "url" in bad.text
    assert client.get("/v1/webhook-endpoints").json()["items"] == []
    assert client.get("/v1/webhook-endpoints/we_nope").status_code == 404
    assert client.post("/v1/webhook-endpoints/we_nope/rotate").status_code == 404


def test_410_gone_disables_the_endpoint_until_it_is_rotated(client: TestClient, services: Services) -> None:
    with receiver(script=[410]) as hook:
        endpoint = client.post("/v1/webhook-endpoints", json={"url": hook.url}).json()
        first = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(first.id, JobStatus.SUCCEEDED)
        gone = wait_for_delivery(client, first.id, "failed")
        assert gone["attempts"] == 1 and "410" in gone["last_error"]  # not retried
        disabled = client.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
        assert disabled["status"] == "disabled" and "410" in disabled["disabled_reason"]

        second = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(second.id, JobStatus.SUCCEEDED)
        skipped = wait_for_delivery(client, second.id, "failed")
        assert skipped["attempts"] == 0 and "disabled" in skipped["last_error"]  # never sent
        assert len(hook.requests) == 1

        refused = client.post(f"/v1/jobs/{second.id}/webhooks/{skipped['id']}/redeliver")
        assert refused.status_code == 409 and "disabled" in refused.text

        secret = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate").json()["secret"]
        assert client.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()["status"] == "enabled"
        assert client.post(f"/v1/jobs/{second.id}/webhooks/{skipped['id']}/redeliver").status_code == 202
        wait_for_delivery(client, second.id, "delivered")
    assert len(hook.requests) == 2 and verify(secret, hook.requests[1]["headers"], hook.requests[1]["body"])


def test_410_from_an_unregistered_url_is_recorded_and_registering_it_enables_it(
    client: TestClient, services: Services
) -> None:
    with receiver(script=[410]) as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        wait_for_delivery(client, job.id, "failed")
        [recorded] = client.get("/v1/webhook-endpoints").json()["items"]
        assert recorded["url"] == hook.url and recorded["status"] == "disabled" and not recorded["registered"]
        registered = client.post("/v1/webhook-endpoints", json={"url": hook.url})
        assert registered.status_code == 201 and registered.json()["status"] == "enabled"
        assert registered.json()["id"] == recorded["id"] and registered.json()["secret"].startswith("whsec_")


# --- the delivery log and redelivery -----------------------------------------------------------


def test_redelivery_sends_the_same_webhook_id_again_as_a_new_series(
    client: TestClient, services: Services
) -> None:
    with receiver(script=[200, 500, 200]) as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        delivered = wait_for_delivery(client, job.id, "delivered")

        answer = client.post(f"/v1/jobs/{job.id}/webhooks/{delivered['id']}/redeliver")
        assert answer.status_code == 202
        assert answer.json()["status"] == "pending" and answer.json()["series"] == 2
        again = client.post(f"/v1/jobs/{job.id}/webhooks/{delivered['id']}/redeliver")
        assert again.status_code in (202, 409)  # 409 while the new series is still pending
        redelivered = wait_for_delivery(client, job.id, "delivered")

    assert {r["headers"]["webhook-id"] for r in hook.requests} == {delivered["id"]}
    assert hook.accepted == [delivered["id"]]  # a de-duplicating receiver processes it once
    log = redelivered["attempt_log"]
    assert [(e["series"], e["status_code"]) for e in log[:3]] == [(1, 200), (2, 500), (2, 200)]
    assert redelivered["attempts"] >= 2 and redelivered["series"] >= 2


def test_redelivery_of_unknown_or_pending_or_another_tenants_delivery_is_refused(
    client: TestClient, services: Services
) -> None:
    services.webhooks._delays = (3600.0,)  # the failed first attempt waits an hour: pending
    with receiver(script=[500]) as hook:
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        hook.wait_for_requests(1)
        time.sleep(0.2)
    [pending] = client.get(f"/v1/jobs/{job.id}/webhooks").json()["items"]
    assert pending["status"] == "pending"
    assert client.post(f"/v1/jobs/{job.id}/webhooks/{pending['id']}/redeliver").status_code == 409
    assert client.post(f"/v1/jobs/{job.id}/webhooks/msg_nope/redeliver").status_code == 404
    other = record_job(services.store, tenant="other", webhook_url="http://127.0.0.1:9/h")
    assert client.post(f"/v1/jobs/{other.id}/webhooks/msg_x/redeliver").status_code == 404


def test_without_a_grace_period_a_rotated_secret_signs_alone(client: TestClient, services: Services) -> None:
    services.webhooks._grace = timedelta(0)  # TRAINYARD_WEBHOOK_SECRET_GRACE_SECONDS=0
    with receiver() as hook:
        endpoint = client.post("/v1/webhook-endpoints", json={"url": hook.url}).json()
        second = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate").json()["secret"]
        job = record_job(services.store, webhook_url=hook.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        hook.wait_for_requests(1)
    request = hook.requests[0]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 1
    assert verify(second, request["headers"], request["body"])
    assert not verify(endpoint["secret"], request["headers"], request["body"])
    # deleting the endpoint returns its URL to the tenant-wide secret
    assert client.delete(f"/v1/webhook-endpoints/{endpoint['id']}").status_code == 204
    assert client.get(f"/v1/webhook-endpoints/{endpoint['id']}").status_code == 404
