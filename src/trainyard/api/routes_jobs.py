from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.concurrency import run_in_threadpool

from ..services.jobs import TrainJobRequest, public_job
from .deps import PaginationDep, ServicesDep, TenantDep, page_body

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202, summary="Start a training job")
async def create_job(
    request: TrainJobRequest,
    services: ServicesDep,
    tenant: TenantDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="retrying with the same key and body returns the first job",
        ),
    ] = None,
) -> dict[str, Any]:
    job = await run_in_threadpool(services.jobs.create_training_job, tenant, request, idempotency_key)
    return {"id": job.id, "model_id": job.model_id, "status": job.status.value}


@router.get("")
def list_jobs(services: ServicesDep, tenant: TenantDep, page: PaginationDep) -> dict[str, Any]:
    return page_body(services.jobs.page(tenant, page.limit, page.cursor), public_job)


@router.get("/{job_id}")
def get_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return public_job(services.jobs.get(tenant, job_id))


@router.get("/{job_id}/metrics")
def job_metrics(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    epochs = services.jobs.metrics(tenant, job_id)
    return {"epochs": [e.model_dump(mode="json", exclude={"job_id"}) for e in epochs]}


@router.post("/{job_id}/cancel", summary="Cancel a job and stop its worker")
def cancel_job(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return public_job(services.jobs.cancel(tenant, job_id))


@router.get("/{job_id}/webhooks", summary="The job's webhook deliveries and their attempts")
def job_webhooks(job_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    services.jobs.get(tenant, job_id)
    deliveries = services.webhooks.deliveries(tenant, job_id)
    return {"items": [d.model_dump(mode="json", exclude={"tenant_id", "payload"}) for d in deliveries]}
