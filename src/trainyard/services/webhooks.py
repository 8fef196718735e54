"""Webhooks signed as the Standard Webhooks spec says (https://www.standardwebhooks.com):
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, keyed by the tenant's secret (`whsec_<base64>`).

Deliveries are records: created once per (job, terminal status) with a deterministic id, so
a duplicate terminal event cannot send twice, then attempted by a worker with exponential
backoff and jitter until delivered or out of attempts. Every attempt is logged on the record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

from ..domain import DeliveryStatus, JobStatus, WebhookDelivery, utcnow
from ..ports import JobStore, SecretStore
from .jobs import public_job

log = logging.getLogger(__name__)

EVENT_TYPES = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_seconds: int = 300) -> bool:
    """What a receiver does; used by the tests and offered to users as the reference."""
    timestamp = int(headers["webhook-timestamp"])
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, headers["webhook-id"], timestamp, body)
    return any(
        hmac.compare_digest(expected, candidate) for candidate in headers["webhook-signature"].split(" ")
    )


class WebhookService:
    def __init__(
        self,
        store: JobStore,
        secrets_store: SecretStore,
        *,
        max_attempts: int,
        backoff_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._store = store
        self._secrets = secrets_store
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._secret_lock = threading.Lock()

    def secret_for(self, tenant_id: str) -> str:
        with self._secret_lock:
            secret = self._secrets.get(f"webhook-secret/{tenant_id}")
            if secret is None:
                secret = new_webhook_secret()
                self._secrets.put(f"webhook-secret/{tenant_id}", secret)
            return secret

    def rotate_secret(self, tenant_id: str) -> str:
        with self._secret_lock:
            secret = new_webhook_secret()
            self._secrets.put(f"webhook-secret/{tenant_id}", secret)
            return secret

    def on_job_status_changed(self, detail: dict[str, Any]) -> None:
        status = JobStatus(detail["status"])
        if status not in EVENT_TYPES:
            return
        job = self._store.get_job_any_tenant(detail["job_id"])
        if job is None or not job.webhook_url:
            return
        event_type = EVENT_TYPES[status]
        delivery = WebhookDelivery(
            id=f"msg_{job.id}_{status.value.lower()}",
            tenant_id=job.tenant_id,
            job_id=job.id,
            url=job.webhook_url,
            event_type=event_type,
            payload={"type": event_type, "timestamp": utcnow().isoformat(), "data": public_job(job)},
        )
        if self._store.put_delivery(delivery):
            self._wake.set()

    def attempt(self, delivery: WebhookDelivery) -> WebhookDelivery:
        import httpx  # imported here: only the delivery worker needs it

        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "Trainyard-Webhooks/1",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.secret_for(delivery.tenant_id), delivery.id, timestamp, body),
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            response = httpx.post(
                delivery.url,
                content=body,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"receiver answered HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        attempts = delivery.attempts + 1
        entry = {
            "attempt": attempts,
            "at": utcnow().isoformat(),
            "status_code": status_code,
            "error": error,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        update: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": error,
            "attempt_log": [*delivery.attempt_log, entry],
        }
        if error is None:
            update.update(status=DeliveryStatus.DELIVERED, delivered_at=utcnow())
        elif attempts >= self._max_attempts:
            update["status"] = DeliveryStatus.FAILED
        else:
            delay = self._backoff * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
            update["next_attempt_at"] = utcnow() + timedelta(seconds=delay)
        updated = delivery.model_copy(update=update)
        self._store.update_delivery(updated)
        return updated

    def deliver_due(self) -> int:
        due = self._store.due_deliveries(limit=20)
        for delivery in due:
            self.attempt(delivery)
        return len(due)

    def run_worker(self, poll_seconds: float = 0.5) -> None:
        while not self._stopping.is_set():
            try:
                self.deliver_due()
            except Exception:
                log.exception("webhook delivery pass failed")
            self._wake.wait(poll_seconds)
            self._wake.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def deliveries(self, tenant_id: str, job_id: str) -> list[WebhookDelivery]:
        return self._store.list_deliveries(tenant_id, job_id)
