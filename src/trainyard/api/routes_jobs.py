from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import TypeAdapter, ValidationError

from ..errors import BadRequest, InvalidInput
from ..services.jobs import AnyJobRequest, JobRequest, PoseInferJobRequest, VideoInput, public_job
from ..services.models import RESULT_MEDIA_TYPES
from .deps import (
    PaginationDep,
    ServicesDep,
    TenantDep,
    check_declared_size,
    declared_body,
    download_response,
    multipart_form,
    page_body,
    read_json_body,
    remove_quietly,
    spool_upload,
)
from .errors import ERROR_RESPONSES, describe_validation_error
from .routes_webhooks import delivery_body

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JOB_REQUEST: TypeAdapter[AnyJobRequest] = TypeAdapter(JobRequest)
# The multipart form of a job request: these fields as text (params as a JSON object), and
# the video as file field `video`.
FORM_FIELDS = ("type", "task", "model_id", "params", "webhook_url")
MAX_JOB_JSON_BYTES = 256 * 1024

CREATE_JOB_BODY = declared_body(
    {
        "application/json": JOB_REQUEST.json_schema(ref_template="#/components/schemas/{model}"),
        "multipart/form-data": {
            "type": "object",
            "required": ["type", "model_id", "video"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": ["infer"]},
                "task": {"type": "string", "enum": ["pose"]},
                "model_id": {"type": "string"},
                "params": {"type": "string", "description": "a JSON object (PoseInferParams)"},
                "webhook_url": {"type": "string"},
                "video": {"type": "string", "format": "binary"},
            },
        },
    }
)


def parse_job_request(body: dict[str, Any]) -> AnyJobRequest:
    try:
        return JOB_REQUEST.validate_python(body)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None


async def _video_from_form(request: Request, services: ServicesDep) -> tuple[dict[str, Any], VideoInput]:
    limit = services.settings.inline_limit
    check_declared_size(request, limit + 64 * 1024)
    form = await multipart_form(request)
    unknown = sorted(set(form.keys()) - {*FORM_FIELDS, "video"})
    if unknown:
        raise InvalidInput(f"unknown form field(s): {', '.join(unknown)}")
    body: dict[str, Any] = {k: v for k in FORM_FIELDS if isinstance(v := form.get(k), str)}
    if "params" in body:
        try:
            body["params"] = json.loads(body["params"])
        except ValueError as exc:
            raise InvalidInput(f"params: not a JSON object: {exc}") from None
    video = form.get("video")
    if video is None or isinstance(video, str):
        raise InvalidInput("video: a multipart file field named 'video' is required")
    path = await spool_upload(video, services.settings.tmp_root, limit)
    try:
        return body, VideoInput.uploaded(path, video.filename or "video.mp4")
    except InvalidInput:
        remove_quietly(path)
        raise


@router.post(
    "",
    status_code=202,
    summary="Start a job: train a classifier, a detector or a pose model, or run a pose model on a video",
    openapi_extra=CREATE_JOB_BODY,
)
async def create_job(
    request: Request,
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
    spooled: Path | None = None
    upload_id: str | None = None
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            body, video = await _video_from_form(request, services)
            spooled = video.path
        else:
            body, video = await read_json_body(request, MAX_JOB_JSON_BYTES), None
        job_request = parse_job_request(body)
        if isinstance(job_request, PoseInferJobRequest) and job_request.video is not None:
            if video is not None:
                raise BadRequest(
                    "send the video either as file field 'video' or as video.upload_id, not both"
                )
            upload_id = job_request.video.upload_id
            video = VideoInput.uploaded(*services.uploads.open_upload(tenant, upload_id))
        job = await run_in_threadpool(services.jobs.create_job, tenant, job_request, idempotency_key, video)
    finally:
        if spooled is not None:
            remove_quietly(spooled)
    if upload_id is not None:  # the job keeps its own copy of the video
        services.uploads.discard(tenant, upload_id)
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
    return {"items": [delivery_body(d) for d in deliveries]}


@router.get("/{job_id}/results", summary="An inference job's results: counts and the files to download")
def job_results(job_id: str, request: Request, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    result = services.models.results(tenant, job_id)
    base = str(request.url).split("?", 1)[0].rstrip("/")
    return {**result, "downloads": {kind: f"{base}/{kind}" for kind in result["files"]}}


@router.get(
    "/{job_id}/results/{kind}",
    summary="Download one result: slp, analysis_h5, json, preview_video or preview_image",
    response_model=None,
)
def download_result(
    job_id: str, kind: str, services: ServicesDep, tenant: TenantDep
) -> FileResponse | RedirectResponse:
    return download_response(services.models.result_location(tenant, job_id, kind), RESULT_MEDIA_TYPES[kind])
