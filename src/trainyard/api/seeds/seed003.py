"""Seed 003's API, custom tags (../shared/seeds/003_*.txt): a thin router over
services/tags.py (the TagService).

Every answer is the original SDK's envelope: `status` "ok", "error" or "ongoing"; on errors
`message` is one code of a fixed list (tags.ERROR_CODES) and `detail` says what was wrong;
while a task runs `message` says how far it is. See docs/seeds/003.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Path as PathParameter
from fastapi import Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...errors import BadRequest, InvalidInput, PayloadTooLarge
from ...services.tags import ERROR_CODES, NAME, SAMPLE_TYPES, seed_error
from ..deps import ServicesDep, declared_body
from ..idempotency import SeedIdempotent
from .common import SeedTenantDep, seed_router

# The core's generic error codes, as this seed names them.
GENERIC_CODES = {
    "invalid_input": "invalid_request",
    "bad_request": "invalid_request",
    "payload_too_large": "file_too_large",
}
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "file_too_large"}


def render_error(status: int, code: str, message: str) -> JSONResponse:
    if code not in ERROR_CODES:
        code = (
            GENERIC_CODES.get(code)
            or HTTP_CODES.get(status)
            or ("internal_error" if status >= 500 else "invalid_request")
        )
    return JSONResponse({"status": "error", "message": code, "detail": message}, status_code=status)


router = seed_router(render_error)

# Declared for the OpenAPI only: the service checks both itself, to answer in the seed's codes
# (invalid_tag, invalid_sample_type) rather than FastAPI's validation error.
Tag = Annotated[str, PathParameter(json_schema_extra={"pattern": NAME.pattern})]
SampleType = Annotated[str, PathParameter(json_schema_extra={"enum": list(SAMPLE_TYPES)})]

# The routes that need the tenant's embedder wait for it to be built (TRAINYARD_TAGS_EMBEDDER_WAIT_SECONDS),
# then answer 503 base_model_not_ready, as docs/seeds/003.md says.
NEEDS_EMBEDDER: dict[int | str, dict[str, Any]] = {
    503: {**router.responses["4XX"], "description": "base_model_not_ready: retry shortly"}
}

# The upload routes read their multipart body themselves (to cap it while reading); this is
# the body they take.
DATA_BODY = declared_body(
    {
        "multipart/form-data": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "string", "format": "binary"}},
        }
    }
)


def ok(**fields: Any) -> dict[str, Any]:
    return {"status": "ok", **fields}


async def read_data_file(request: Request, limit: int) -> UploadFile:
    """The multipart file field `data` every upload route of the seed takes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise seed_error(
            PayloadTooLarge, "file_too_large", f"request body is {declared} bytes; the limit is {limit}"
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise seed_error(BadRequest, "missing_data", "send the file as multipart/form-data field 'data'")
    try:
        form = await request.form()
    except Exception as exc:  # starlette raises several kinds for a broken multipart body
        raise seed_error(BadRequest, "missing_data", f"unreadable multipart body ({exc})") from exc
    data = form.get("data")
    if not isinstance(data, UploadFile):
        raise seed_error(
            InvalidInput, "missing_data", "multipart file field 'data' is missing (or is not a file)"
        )
    return data


async def read_data_bytes(request: Request, limit: int) -> bytes:
    data = await read_data_file(request, limit)
    payload = await data.read(limit + 1)
    if len(payload) > limit:
        raise seed_error(PayloadTooLarge, "file_too_large", f"data: over the {limit}-byte limit")
    return payload


@router.post("/custom/add", openapi_extra=DATA_BODY)
async def add_image(
    request: Request,
    tenant: SeedTenantDep,
    services: ServicesDep,
    call: SeedIdempotent,
    image_id: Annotated[str | None, Query(json_schema_extra={"pattern": NAME.pattern})] = None,
) -> Any:
    """Add an image (multipart `data`); `image_id` is generated when not given."""
    if call.replayed is not None:
        return call.replayed
    data = await read_data_bytes(request, services.settings.inline_limit)
    added = await run_in_threadpool(services.tags.add_image, tenant, data, image_id)
    return call.remember(ok(image_id=added))


@router.get("/custom/assign/{image_id}/{sample_type}/{tag}")
def assign_image(
    image_id: str, sample_type: SampleType, tag: Tag, tenant: SeedTenantDep, services: ServicesDep
) -> dict[str, Any]:
    counts = services.tags.assign(tenant, image_id, sample_type, tag)
    return ok(image_id=image_id, type=sample_type, **counts)


@router.get("/custom/train/{tag}", responses=NEEDS_EMBEDDER)
def train_tag(tag: Tag, tenant: SeedTenantDep, services: ServicesDep, call: SeedIdempotent) -> Any:
    if call.replayed is not None:
        return call.replayed
    return call.remember(ok(task_id=services.tags.train(tenant, tag)))


@router.get("/status/{task_id}")
def task_status(task_id: str, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    return services.tags.task_status(tenant, task_id)


@router.get("/custom/delete/{tag}")
def delete_tag(tag: Tag, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    services.tags.delete_tag(tenant, tag)
    return ok(tag=tag)


@router.post("/predict/custom/{tag}", responses=NEEDS_EMBEDDER, openapi_extra=DATA_BODY)
async def predict_one_tag(
    tag: Tag, request: Request, tenant: SeedTenantDep, services: ServicesDep
) -> dict[str, Any]:
    data = await read_data_bytes(request, services.settings.inline_limit)
    return ok(custom=await run_in_threadpool(services.tags.predict_upload, tenant, data, tag))


@router.post("/predict/custom", responses=NEEDS_EMBEDDER, openapi_extra=DATA_BODY)
async def predict_all_tags(request: Request, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    data = await read_data_bytes(request, services.settings.inline_limit)
    return ok(custom=await run_in_threadpool(services.tags.predict_upload, tenant, data, None))


@router.post("/predict", responses=NEEDS_EMBEDDER, openapi_extra=DATA_BODY)
async def predict_all(request: Request, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    """Every custom tag, and the base model's labels (or why there are none)."""
    data = await read_data_bytes(request, services.settings.inline_limit)
    custom = await run_in_threadpool(services.tags.predict_upload, tenant, data, None)
    base = await run_in_threadpool(services.tags.base_predictions, tenant, data)
    return ok(custom=custom, base=base)


@router.get("/custom/predict/{image_id}", responses=NEEDS_EMBEDDER)
def predict_added_image(image_id: str, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    return ok(custom=services.tags.predict_added(tenant, image_id, None))


@router.get("/custom/predict/{tag}/{image_id}", responses=NEEDS_EMBEDDER)
def predict_added_image_one_tag(
    tag: Tag, image_id: str, tenant: SeedTenantDep, services: ServicesDep
) -> dict[str, Any]:
    return ok(custom=services.tags.predict_added(tenant, image_id, tag))


@router.post("/set_state", responses=NEEDS_EMBEDDER, openapi_extra=DATA_BODY)
async def set_state(request: Request, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    """Replace the images and tags with a state tar's (multipart `data`, as /get_state gives)."""
    limit = services.tags.max_state_bytes
    data = await read_data_file(request, limit)
    services.settings.tmp_root.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(suffix=".tar", dir=services.settings.tmp_root)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as spooled:
            written = 0
            while chunk := await data.read(1024 * 1024):
                written += len(chunk)
                if written > limit:
                    raise seed_error(PayloadTooLarge, "file_too_large", f"data: over the {limit}-byte limit")
                spooled.write(chunk)
        summary = await run_in_threadpool(services.tags.import_state, tenant, path)
    finally:
        path.unlink(missing_ok=True)
    return ok(**summary)


@router.get(
    "/get_state",
    response_class=FileResponse,
    responses={200: {"description": "The state tar", "content": {"application/x-tar": {}}}},
)
def get_state(tenant: SeedTenantDep, services: ServicesDep) -> FileResponse:
    """The images, assignments and tag models as a tar that /set_state takes back."""
    services.settings.tmp_root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(dir=services.settings.tmp_root))
    path = directory / "state.tar"
    try:
        services.tags.export_state(tenant, path)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename="state.tar",
        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True),
    )
