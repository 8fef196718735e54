"""Webhook endpoints (per-URL signing secrets, rotation, re-enabling) and redelivery.

A secret is returned only when it is made (registration, rotation), as Stripe shows a signing
secret; listing and reading an endpoint never show it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ..domain import WebhookDelivery, WebhookEndpoint
from .deps import ServicesDep, TenantDep
from .errors import ERROR_RESPONSES
from .idempotency import CoreIdempotent

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)


class EndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="http(s) URL that receives the job's events")


def endpoint_body(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    body = endpoint.model_dump(mode="json", exclude={"tenant_id"})
    body["status"] = "disabled" if endpoint.disabled_at else "enabled"
    if secret is not None:
        body["secret"] = secret
    return body


def delivery_body(delivery: WebhookDelivery) -> dict[str, Any]:
    return delivery.model_dump(mode="json", exclude={"tenant_id", "payload", "version"})


@router.post(
    "/v1/webhook-endpoints",
    status_code=201,
    summary="Register a URL with its own signing secret (returned once); registering it again re-enables it",
)
def register_endpoint(
    request: EndpointRequest,
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
    call: CoreIdempotent,
) -> Any:
    if call.replayed is not None:
        return call.replayed
    endpoint, secret, created = services.webhooks.register_endpoint(tenant, request.url)
    if not created:
        response.status_code = 200
    # the signing secret stays in the secret store only: a replay answers without it
    return call.remember(endpoint_body(endpoint, secret), response.status_code or 201, redact=("secret",))


@router.get("/v1/webhook-endpoints", summary="The tenant's webhook endpoints (secrets are not shown)")
def list_endpoints(services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return {"items": [endpoint_body(endpoint) for endpoint in services.webhooks.endpoints(tenant)]}


@router.get("/v1/webhook-endpoints/{endpoint_id}", summary="One webhook endpoint: status, why disabled")
def get_endpoint(endpoint_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return endpoint_body(services.webhooks.get_endpoint(tenant, endpoint_id))


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate",
    summary="A new signing secret (returned once); the old one keeps signing for the grace period."
    " Re-enables a disabled endpoint",
)
def rotate_endpoint_secret(endpoint_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    endpoint, secret = services.webhooks.rotate_endpoint_secret(tenant, endpoint_id)
    return endpoint_body(endpoint, secret)


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}",
    status_code=204,
    summary="Forget an endpoint: its URL is signed with the tenant-wide secret again",
)
def delete_endpoint(endpoint_id: str, services: ServicesDep, tenant: TenantDep) -> Response:
    services.webhooks.delete_endpoint(tenant, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/v1/jobs/{job_id}/webhooks/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivered or failed webhook again: a new series of attempts, the same webhook-id",
)
def redeliver(job_id: str, delivery_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    services.jobs.get(tenant, job_id)  # another tenant's job: 404
    return delivery_body(services.webhooks.redeliver(tenant, job_id, delivery_id))
