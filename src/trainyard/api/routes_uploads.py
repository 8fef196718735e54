"""Uploads: ask where to send a large file, then (local backend only) send it here.

The UploadService is `request.app.state.uploads`, set by create_app next to
`app.state.services`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urljoin

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from ..domain import Dataset
from ..errors import InvalidInput
from ..services.uploads import UploadService
from .deps import (
    ServicesDep,
    TenantDep,
    check_declared_size,
    declared_body,
    parse_task,
    read_json_body,
    reject_unknown_fields,
    remove_quietly,
    spool_chunks,
)
from .errors import ERROR_RESPONSES
from .idempotency import CoreIdempotent

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=ERROR_RESPONSES)

# The JSON bodies here are a few short fields; nothing legitimate comes near this.
MAX_JSON_BODY_BYTES = 16 * 1024


def get_uploads(request: Request) -> UploadService:
    uploads: UploadService = request.app.state.uploads
    return uploads


UploadsDep = Annotated[UploadService, Depends(get_uploads)]


CREATE_BODY = declared_body(
    {
        "application/json": {
            "type": "object",
            "required": ["filename", "size_bytes"],
            "additionalProperties": False,
            "properties": {
                "filename": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "\\S"},
                "size_bytes": {"type": "integer", "minimum": 1},
                "purpose": {"type": "string", "enum": ["dataset", "video"]},
            },
        }
    }
)


@router.post(
    "",
    status_code=201,
    summary="Start an upload; the answer says where to send the file (method, url, fields)",
    openapi_extra=CREATE_BODY,
)
async def create_upload(
    request: Request,
    uploads: UploadsDep,
    tenant: TenantDep,
    call: CoreIdempotent,
) -> Any:
    if call.replayed is not None:
        return call.replayed
    body = await read_json_body(request, MAX_JSON_BODY_BYTES)
    reject_unknown_fields(body, {"filename", "size_bytes", "purpose"})
    filename, size_bytes, purpose = (
        body.get("filename"),
        body.get("size_bytes"),
        body.get("purpose", "dataset"),
    )
    if not isinstance(filename, str):
        raise InvalidInput("filename: a string is required")
    if isinstance(size_bytes, float) and size_bytes.is_integer():
        size_bytes = int(size_bytes)  # JSON has one number type: 1024.0 is the integer 1024
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool):
        raise InvalidInput("size_bytes: an integer is required")
    if not isinstance(purpose, str):
        raise InvalidInput("purpose: must be a string")
    instructions = await run_in_threadpool(uploads.create, tenant, filename, size_bytes, purpose)
    # The API transport answers with a path on this API; clients need a whole URL.
    instructions["url"] = urljoin(str(request.base_url), instructions["url"])
    return call.remember(instructions, 201)


@router.put(
    "/{upload_id}",
    summary="Send an upload's bytes as the raw body (local backend; on AWS use the presigned POST)",
    openapi_extra=declared_body({"application/octet-stream": {"type": "string", "format": "binary"}}),
)
async def send_upload_bytes(
    upload_id: str, request: Request, services: ServicesDep, uploads: UploadsDep, tenant: TenantDep
) -> dict[str, Any]:
    upload = await run_in_threadpool(uploads.accept_api_upload, tenant, upload_id)
    check_declared_size(request, upload.max_bytes)
    spooled = await spool_chunks(request.stream(), services.settings.tmp_root, upload.max_bytes, "the upload")
    try:
        size = spooled.stat().st_size
        await run_in_threadpool(uploads.store_api_upload, tenant, upload_id, spooled)
    finally:
        remove_quietly(spooled)
    return {"upload_id": upload_id, "size_bytes": size}


async def dataset_from_upload_request(request: Request, tenant: str) -> Dataset:
    """The JSON form of POST /v1/datasets: {"name": ..., "upload_id": ...} names a finished
    upload instead of carrying the archive."""
    body = await read_json_body(request, MAX_JSON_BODY_BYTES)
    reject_unknown_fields(body, {"name", "upload_id", "task"})
    name, upload_id = body.get("name"), body.get("upload_id")
    task = parse_task(body.get("task"))
    if not isinstance(name, str):
        raise InvalidInput("name: a string is required")
    if not isinstance(upload_id, str):
        raise InvalidInput("upload_id: a string is required (the id POST /v1/uploads returned)")
    return await run_in_threadpool(get_uploads(request).create_dataset, tenant, name, upload_id, task)
