"""`Idempotency-Key` for the creating routes that POST /v1/jobs does not cover itself.

One mechanism for every such route, core or seed: a route declares the dependency made by
`idempotency(tenant_of)` and, in its body,

    if call.replayed is not None:
        return call.replayed
    ...
    return call.remember(result, status_code)

Without the header nothing happens (the request is handled exactly as before). With it, the
request's fingerprint (SHA-256 of method, path parameters and body; for multipart bodies the
boundary is normalised so that a client's retry matches) is claimed in the JobStore as an
alias: namespace "idempotency:<route's function>", name = the key, data = {fingerprint,
state, response}. The alias insert is the lock: of two concurrent first requests one inserts
and runs, the other reads the claim and answers 409 (in progress) or, once the first has
finished, the first's response. A later request with the same key and body gets the stored
response again (same status and body; nothing new is made); the same key with another body is
a 422 in the route's own error form (the route raises InvalidInput; seed routers render it).
A request that fails stores no answer: its claim is marked released (state "released", by
compare-and-set) and the next request with the key, whatever its body, takes it over and runs.

Records are kept (no expiry), like the other aliases of a tenant. A claim whose request died
mid-way (process killed) is taken over after CLAIM_STALE_AFTER by compare-and-set
(JobStore.replace_alias writes only while the claim's updated_at is the one read): of retries
that find it stale at the same moment, in one process or in several, one takes it over and
runs the request, the others answer 409 as for any claim in progress. The request that held
a claim writes its answer or its release by compare-and-set too, so one that outlived
CLAIM_STALE_AFTER and was taken over cannot overwrite or release its successor's claim. A field that carries a
secret (a webhook endpoint's signing secret) is never stored here: the route names it in
`redact`, and a replay answers without it (the secret lives in the SecretStore only; rotate
for a new one).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.encoders import jsonable_encoder

from ..bootstrap import Services
from ..domain import Alias, utcnow
from ..errors import Conflict, InvalidInput, PayloadTooLarge

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
NAMESPACE_PREFIX = "idempotency:"
# A claim older than this belongs to a request that will never finish (its process died):
# no creating route runs this long (seed 004's training waits digits_training_wait at most).
CLAIM_STALE_AFTER = timedelta(minutes=15)
# Slack over the inline limit for multipart framing and base64 (seed 001 sends 4/3 of it).
BODY_SLACK = 1024 * 1024

TenantOf = Callable[[Request, Services], str]
T = TypeVar("T")


class IdempotentCall:
    """One request's idempotency state: `replayed` is the stored response of an earlier
    request with the same key and body; `remember` stores this request's response."""

    def __init__(
        self,
        services: Services | None = None,
        claim: Alias | None = None,
        replayed: Response | None = None,
    ) -> None:
        self._services = services
        self._claim = claim
        self.replayed = replayed
        self.remembered = False

    def remember(self, result: T, status_code: int = 200, *, redact: tuple[str, ...] = ()) -> T:
        """Store `result` (what the route returns: a JSON-able value or a Response) as the
        answer to this key, and return it unchanged. `redact`: top-level fields that hold a
        secret; they are left out of the stored answer (a replay does not show them)."""
        if self._claim is None or self._services is None:
            return result  # no key was sent
        if isinstance(result, Response):
            if result.status_code >= 400:
                return result  # a refusal rendered as a response: not kept, the claim is released
            body, media_type, status_code = bytes(result.body).decode(), result.media_type, result.status_code
        else:
            encoded = jsonable_encoder(result)
            if redact and isinstance(encoded, dict):
                encoded = {k: v for k, v in encoded.items() if k not in redact}
            body, media_type = json.dumps(encoded), "application/json"
        response = {"status": status_code, "media_type": media_type, "body": body}
        # writes nothing when this request outlived CLAIM_STALE_AFTER and a retry took the key
        # over: the retry's answer is the one kept
        self._set_state("done", response=response)
        self.remembered = True
        return result

    def release(self) -> None:
        """The request failed (or returned without remembering): mark the claim released, so
        that a retry with the same key runs afresh."""
        if self._claim is not None and self._services is not None and not self.remembered:
            self._set_state("released")

    def _set_state(self, state: str, **data: Any) -> bool:
        """Write the claim's new state only while it is still this request's (compare-and-set)."""
        assert self._claim is not None and self._services is not None
        updated = self._claim.model_copy(
            update={"data": {**self._claim.data, "state": state, **data}, "updated_at": utcnow()}
        )
        return self._services.store.replace_alias(self._claim, updated)


def idempotency(tenant_of: TenantOf) -> Callable[..., AsyncIterator[IdempotentCall]]:
    """The dependency for one family of routes; `tenant_of(request, services)` is how those
    routes find the caller's tenant (called only when a key is sent, so a request without one
    is authenticated by the route exactly as before)."""

    async def dependency(request: Request) -> AsyncIterator[IdempotentCall]:
        key = request.headers.get(HEADER)
        if key is None:
            yield IdempotentCall()
            return
        check_key(key)
        services: Services = request.app.state.services
        tenant = tenant_of(request, services)
        fingerprint = await request_fingerprint(request, services.settings.inline_limit * 4 // 3 + BODY_SLACK)
        call = claim(services, tenant, _namespace(request), key, fingerprint)
        try:
            yield call
        finally:
            call.release()  # a no-op once the response is remembered or for a replay

    return dependency


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise InvalidInput(f"{HEADER}: must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")


def claim(services: Services, tenant: str, namespace: str, key: str, fingerprint: str) -> IdempotentCall:
    """Claim the key for this request, or answer from the earlier request that holds it."""
    store = services.store
    fresh = Alias(
        tenant_id=tenant,
        namespace=namespace,
        name=key,
        target=fingerprint,
        data={"fingerprint": fingerprint, "state": "in_progress"},
    )
    try:
        store.put_alias(fresh)
        return IdempotentCall(services, fresh)
    except Conflict:
        pass
    existing = store.get_alias(tenant, namespace, key)
    if existing is None:  # deleted between our insert and read
        raise Conflict(f"a request with this {HEADER} just failed; retry")
    if existing.data.get("state") == "released":  # the earlier request failed: run this one
        taken = fresh.model_copy(update={"created_at": existing.created_at, "updated_at": utcnow()})
        if store.replace_alias(existing, taken):
            return IdempotentCall(services, taken)
        raise Conflict(f"a request with this {HEADER} is still in progress; retry shortly")
    if existing.data.get("fingerprint") != fingerprint:
        raise InvalidInput(
            f"{HEADER}: this key was used for a request with another body; use a new key for a new request"
        )
    if existing.data.get("state") == "done":
        return IdempotentCall(replayed=_stored_response(existing))
    if utcnow() - existing.updated_at > CLAIM_STALE_AFTER:  # its request died mid-way
        taken = existing.model_copy(update={"updated_at": utcnow()})
        if store.replace_alias(existing, taken):
            return IdempotentCall(services, taken)
        # the claim changed since our read: another retry took it over (or its request ended
        # at last); answered as in progress, the next retry sees which
    raise Conflict(f"a request with this {HEADER} is still in progress; retry shortly")


def _stored_response(record: Alias) -> Response:
    response = record.data["response"]
    return Response(
        content=response["body"], status_code=response["status"], media_type=response["media_type"]
    )


def _namespace(request: Request) -> str:
    """One namespace per route function: a seed route served at the root and under its
    /seeds/<n> prefix is one operation and shares its keys."""
    endpoint = request.scope.get("endpoint")
    name = f"{endpoint.__module__}.{endpoint.__qualname__}" if endpoint is not None else request.url.path
    return NAMESPACE_PREFIX + name.removeprefix("trainyard.api.")


async def request_fingerprint(request: Request, limit: int) -> str:
    """SHA-256 of what makes two requests the same: method, path parameters, query, body.
    The body is read here (at most `limit` bytes) and left cached on the request, where the
    route's own readers (body(), form(), stream()) find it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body is {declared} bytes; with an {HEADER} the limit is {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes; with an {HEADER} that is the limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's own cache: body(), form() and stream() read from it
    content_type = request.headers.get("content-type", "")
    boundary = re.search(r"boundary=\"?([^\";]+)", content_type)
    if content_type.startswith("multipart/") and boundary:
        # a client picks a new random boundary per request; the parts are what identify it
        body = body.replace(boundary.group(1).encode(), b"<boundary>")
        content_type = "multipart/form-data"
    digest = hashlib.sha256()
    identity = {
        "method": request.method,
        "path_params": request.path_params,
        "query": sorted(request.query_params.multi_items()),
        "content_type": content_type.split(";")[0].strip(),
    }
    digest.update(json.dumps(identity, sort_keys=True).encode())
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def idempotent(tenant_of: TenantOf) -> Any:
    """`Annotated[IdempotentCall, idempotent(tenant_of)]` in a route's signature. The scope ends
    the dependency before the answer is sent, so a failed request's claim is gone when the
    client sees the failure."""
    return Depends(idempotency(tenant_of), scope="function")


def _core_tenant(request: Request, services: Services) -> str:
    from .deps import get_tenant

    return get_tenant(request, services)


def _seed_tenant(request: Request, services: Services) -> str:
    from .seeds.common import seed_tenant  # imported here: the seed routers import this module

    return seed_tenant(request, services)


def _token_tenant(request: Request, services: Services) -> str:
    from .seeds.common import token_tenant

    return token_tenant(request, services)


# What a route declares, by the way its family of routes authenticates the caller.
CoreIdempotent = Annotated[IdempotentCall, idempotent(_core_tenant)]
SeedIdempotent = Annotated[IdempotentCall, idempotent(_seed_tenant)]
TokenIdempotent = Annotated[IdempotentCall, idempotent(_token_tenant)]
