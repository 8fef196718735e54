"""Webhooks signed as the Standard Webhooks spec says (https://www.standardwebhooks.com):
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, keyed by a `whsec_<base64>` secret.

Secrets: a URL registered as an endpoint (`POST /v1/webhook-endpoints`) has its own secret;
rotating it keeps the old one valid for a grace period, during which every message carries
both signatures (the header holds several, space-separated, as the spec allows). Any other
URL (a job's `webhook_url` never registered) is signed with the tenant-wide secret.
Secrets live in the SecretStore, never in the store's records.

Deliveries are records: created once per (job, terminal status) with a deterministic id, so a
duplicate terminal event cannot send twice. A worker claims a due delivery with a
compare-and-set write (a lease as long as one attempt), so two workers (the scheduled and the
event-driven Lambda) never send the same attempt; a worker that dies mid-attempt leaves a lease
that runs out and the delivery is due again. Failed attempts follow the retry schedule (about
three days by default) with ±20% jitter; redirects are not followed; a receiver answering
410 Gone disables its endpoint, and nothing more is sent to it until it is registered again or
its secret rotated. Every attempt is logged on the record, and a delivery can be redelivered:
a new series of attempts with the same `webhook-id`, so receivers de-duplicate it.
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
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ..domain import DeliveryStatus, JobStatus, WebhookDelivery, WebhookEndpoint, utcnow
from ..errors import Conflict, InvalidInput, NotFound
from ..ports import JobStore, SecretStore
from . import outbound
from .jobs import public_job

log = logging.getLogger(__name__)

EVENT_TYPES = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}
GONE = 410
JITTER = (0.8, 1.2)
# a claimed attempt is someone else's for this long past the request timeout
CLAIM_MARGIN_SECONDS = 30.0
MAX_URL_LENGTH = 2048


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


def endpoint_id_for(tenant_id: str, url: str) -> str:
    """Derived, not random: a delivery finds its endpoint from (tenant, url) with one read."""
    return "we_" + hashlib.sha256(f"{tenant_id}\n{url}".encode()).hexdigest()[:20]


def check_webhook_url(url: str) -> str:
    """The shape a receiver URL must have (where it may point is the SSRF check's business)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url: longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"url: {url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise InvalidInput("url: credentials in the URL are not accepted")
    return url


class WebhookService:
    def __init__(
        self,
        store: JobStore,
        secrets_store: SecretStore,
        *,
        retry_delays: Sequence[float],
        timeout_seconds: float,
        secret_grace_seconds: float = 24 * 3600,
        allow_loopback_urls: bool = False,
    ) -> None:
        self._store = store
        self._allow_loopback_urls = allow_loopback_urls
        self._secrets = secrets_store
        self._delays = tuple(retry_delays)
        self._timeout = timeout_seconds
        self._grace = timedelta(seconds=secret_grace_seconds)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._secret_lock = threading.Lock()

    @property
    def max_attempts(self) -> int:
        return len(self._delays) + 1

    # --- the tenant-wide secret (URLs not registered as endpoints) -----------------------

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

    # --- endpoints -----------------------------------------------------------------------

    @staticmethod
    def _endpoint_secret_name(endpoint: WebhookEndpoint) -> str:
        return f"webhook-endpoint/{endpoint.tenant_id}/{endpoint.id}"

    def _endpoint_secrets(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        stored = self._secrets.get(self._endpoint_secret_name(endpoint))
        loaded: dict[str, Any] = json.loads(stored) if stored else {}
        return loaded

    def register_endpoint(self, tenant_id: str, url: str) -> tuple[WebhookEndpoint, str | None, bool]:
        """(endpoint, its secret when one was made now, whether the endpoint is new). A URL
        registered already is re-enabled and keeps its secret (rotate to get a new one)."""
        check_webhook_url(url)
        outbound.check_public_url(url, self._allow_loopback_urls)  # SSRF: public https only
        endpoint_id = endpoint_id_for(tenant_id, url)
        with self._secret_lock:
            existing = self._store.get_webhook_endpoint(tenant_id, endpoint_id)
            if existing is not None and existing.registered:
                enabled = existing.model_copy(
                    update={"disabled_at": None, "disabled_reason": None, "updated_at": utcnow()}
                )
                self._store.put_webhook_endpoint(enabled)
                return enabled, None, False
            now = utcnow()
            endpoint = WebhookEndpoint(
                id=endpoint_id,
                tenant_id=tenant_id,
                url=url,
                secret_rotated_at=now,
                created_at=now,
                updated_at=now,
            )
            secret = new_webhook_secret()
            # the secret first: an endpoint record never exists without the secret it signs with
            self._secrets.put(self._endpoint_secret_name(endpoint), json.dumps({"current": secret}))
            self._store.put_webhook_endpoint(endpoint)
            return endpoint, secret, True

    def rotate_endpoint_secret(self, tenant_id: str, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
        """A new secret; the old one still signs for the grace period. Re-enables the endpoint."""
        with self._secret_lock:
            endpoint = self.get_endpoint(tenant_id, endpoint_id)
            now = utcnow()
            stored = self._endpoint_secrets(endpoint)
            secret = new_webhook_secret()
            rotated: dict[str, Any] = {"current": secret}
            if stored.get("current") and self._grace.total_seconds() > 0:
                rotated["previous"] = stored["current"]
                rotated["previous_expires_at"] = (now + self._grace).isoformat()
            self._secrets.put(self._endpoint_secret_name(endpoint), json.dumps(rotated))
            updated = endpoint.model_copy(
                update={
                    "registered": True,
                    "disabled_at": None,
                    "disabled_reason": None,
                    "secret_rotated_at": now,
                    "updated_at": now,
                }
            )
            self._store.put_webhook_endpoint(updated)
            return updated, secret

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = self._store.get_webhook_endpoint(tenant_id, endpoint_id)
        if endpoint is None:
            raise NotFound(f"webhook endpoint {endpoint_id!r} not found")
        return endpoint

    def endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return self._store.list_webhook_endpoints(tenant_id)

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> None:
        """Its URL goes back to the tenant-wide secret, and is no longer disabled."""
        endpoint = self.get_endpoint(tenant_id, endpoint_id)
        with self._secret_lock:
            self._store.delete_webhook_endpoint(tenant_id, endpoint_id)
            self._secrets.delete(self._endpoint_secret_name(endpoint))

    def _signing_secrets(self, tenant_id: str, endpoint: WebhookEndpoint | None) -> list[str]:
        if endpoint is None or not endpoint.registered:
            return [self.secret_for(tenant_id)]
        stored = self._endpoint_secrets(endpoint)
        if not stored.get("current"):  # its secret is gone: a half-deleted endpoint
            return [self.secret_for(tenant_id)]
        keys = [stored["current"]]
        expires = stored.get("previous_expires_at")
        if stored.get("previous") and expires and utcnow() < datetime.fromisoformat(expires):
            keys.append(stored["previous"])
        return keys

    def _disable(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, reason: str) -> None:
        now = utcnow()
        if endpoint is None:  # never registered: recorded only so that nothing more is sent
            endpoint = WebhookEndpoint(
                id=endpoint_id_for(delivery.tenant_id, delivery.url),
                tenant_id=delivery.tenant_id,
                url=delivery.url,
                registered=False,
            )
        self._store.put_webhook_endpoint(
            endpoint.model_copy(update={"disabled_at": now, "disabled_reason": reason, "updated_at": now})
        )
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)

    # --- deliveries ----------------------------------------------------------------------

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

    def _claim(self, delivery: WebhookDelivery) -> WebhookDelivery | None:
        lease = utcnow() + timedelta(seconds=self._timeout + CLAIM_MARGIN_SECONDS)
        claimed = delivery.model_copy(update={"next_attempt_at": lease, "version": delivery.version + 1})
        return claimed if self._store.replace_delivery(delivery, claimed) else None

    def _settle(self, claimed: WebhookDelivery, update: dict[str, Any]) -> WebhookDelivery:
        settled = claimed.model_copy(update={**update, "version": claimed.version + 1})
        if not self._store.replace_delivery(claimed, settled):
            # only a redelivery request can overtake a claimed attempt, and it refuses pending
            # deliveries; so this is a lease that ran out under a slow attempt
            log.warning("webhook delivery %s changed during its attempt; result not recorded", claimed.id)
        return settled

    def attempt(self, delivery: WebhookDelivery) -> WebhookDelivery | None:
        """One attempt of a due delivery; None when another worker claimed it first."""
        import httpx  # imported here: only the delivery worker needs it

        claimed = self._claim(delivery)
        if claimed is None:
            return None
        endpoint = self._store.get_webhook_endpoint(
            claimed.tenant_id, endpoint_id_for(claimed.tenant_id, claimed.url)
        )
        if endpoint is not None and endpoint.disabled_at is not None:
            return self._settle(
                claimed,
                {
                    "status": DeliveryStatus.FAILED,
                    "last_error": f"not attempted: endpoint {endpoint.id} disabled since "
                    f"{endpoint.disabled_at.isoformat()} ({endpoint.disabled_reason})",
                },
            )

        body = json.dumps(claimed.payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        signatures = " ".join(
            sign(key, claimed.id, timestamp, body)
            for key in self._signing_secrets(claimed.tenant_id, endpoint)
        )
        headers = {
            "content-type": "application/json",
            "user-agent": "Trainyard-Webhooks/1",
            "webhook-id": claimed.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures,
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            # re-checked at each attempt, on a connection pinned to the checked address (DNS
            # rebinding); a refused URL sends nothing and fails the attempt
            response = outbound.post(
                claimed.url,
                allow_loopback=self._allow_loopback_urls,
                content=body,
                headers=headers,
                timeout=self._timeout,
            )
            status_code = response.status_code
            if 300 <= status_code < 400:
                error = f"receiver answered HTTP {status_code}; redirects are not followed"
            elif not 200 <= status_code < 300:
                error = f"receiver answered HTTP {status_code}"
        except outbound.UnsafeURL as exc:
            error = f"not sent: {exc.message}"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        attempts = claimed.attempts + 1
        entry = {
            "attempt": attempts,
            "series": claimed.series,
            "at": utcnow().isoformat(),
            "status_code": status_code,
            "error": error,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        update: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": error,
            "attempt_log": [*claimed.attempt_log, entry],
        }
        if error is None:
            update.update(status=DeliveryStatus.DELIVERED, delivered_at=utcnow(), next_attempt_at=utcnow())
        elif status_code == GONE:
            reason = "receiver answered HTTP 410 Gone"
            self._disable(claimed, endpoint, reason)
            update.update(status=DeliveryStatus.FAILED, last_error=f"{reason}; endpoint disabled")
        elif attempts > len(self._delays):
            update["status"] = DeliveryStatus.FAILED
        else:
            delay = self._delays[attempts - 1] * random.uniform(*JITTER)
            update["next_attempt_at"] = utcnow() + timedelta(seconds=delay)
        return self._settle(claimed, update)

    def deliver_due(self) -> int:
        """Attempts what is due; returns how many attempts this worker made."""
        return sum(self.attempt(delivery) is not None for delivery in self._store.due_deliveries(limit=20))

    def redeliver(self, tenant_id: str, job_id: str, delivery_id: str) -> WebhookDelivery:
        """A new series of attempts (the whole retry schedule) with the same webhook-id."""
        found = [d for d in self._store.list_deliveries(tenant_id, job_id) if d.id == delivery_id]
        if not found:
            raise NotFound(f"webhook delivery {delivery_id!r} not found for job {job_id!r}")
        delivery = found[0]
        if delivery.status is DeliveryStatus.PENDING:
            raise Conflict(f"webhook delivery {delivery_id!r} is still being attempted; nothing to redeliver")
        endpoint = self._store.get_webhook_endpoint(tenant_id, endpoint_id_for(tenant_id, delivery.url))
        if endpoint is not None and endpoint.disabled_at is not None:
            raise Conflict(
                f"webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); register its URL "
                "again or rotate its secret to enable it, then redeliver"
            )
        renewed = delivery.model_copy(
            update={
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "series": delivery.series + 1,
                "next_attempt_at": utcnow(),
                "delivered_at": None,
                "version": delivery.version + 1,
            }
        )
        if not self._store.replace_delivery(delivery, renewed):
            raise Conflict(f"webhook delivery {delivery_id!r} changed meanwhile; try again")
        self._wake.set()
        return renewed

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
