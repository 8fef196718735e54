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
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...errors import BadRequest, InvalidInput, PayloadTooLarge
from ...services.tags import ERROR_CODES, seed_error
from ..deps import ServicesDep
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


@router.post("/custom/add")
async def add_image(
    request: Request,
    tenant: SeedTenantDep,
    services: ServicesDep,
    call: SeedIdempotent,
    image_id: str | None = None,
) -> Any:
    """Add an image (multipart `data`); `image_id` is generated when not given."""
    if call.replayed is not None:
        return call.replayed
    data = await read_data_bytes(request, services.settings.inline_limit)
    added = await run_in_threadpool(services.tags.add_image, tenant, data, image_id)
    return call.remember(ok(image_id=added))


@router.get("/custom/assign/{image_id}/{sample_type}/{tag}")
def assign_image(
    image_id: str, sample_type: str, tag: str, tenant: SeedTenantDep, services: ServicesDep
) -> dict[str, Any]:
    counts = services.tags.assign(tenant, image_id, sample_type, tag)
    return ok(image_id=image_id, type=sample_type, **counts)


@router.get("/custom/train/{tag}")
def train_tag(tag: str, tenant: SeedTenantDep, services: ServicesDep, call: SeedIdempotent) -> Any:
    if call.replayed is not None:
        return call.replayed
    return call.remember(ok(task_id=services.tags.train(tenant, tag)))


@router.get("/status/{task_id}")
def task_status(task_id: str, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    return services.tags.task_status(tenant, task_id)


@router.get("/custom/delete/{tag}")
def delete_tag(tag: str, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    services.tags.delete_tag(tenant, tag)
    return ok(tag=tag)


@router.post("/predict/custom/{tag}")
async def predict_one_tag(
    tag: str, request: Request, tenant: SeedTenantDep, services: ServicesDep
) -> dict[str, Any]:
    data = await read_data_bytes(request, services.settings.inline_limit)
    return ok(custom=await run_in_threadpool(services.tags.predict_upload, tenant, data, tag))


@router.post("/predict/custom")
async def predict_all_tags(request: Request, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    data = await read_data_bytes(request, services.settings.inline_limit)
    return ok(custom=await run_in_threadpool(services.tags.predict_upload, tenant, data, None))


@router.post("/predict")
async def predict_all(request: Request, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    """Every custom tag, and the base model's labels (or why there are none)."""
    data = await read_data_bytes(request, services.settings.inline_limit)
    custom = await run_in_threadpool(services.tags.predict_upload, tenant, data, None)
    base = await run_in_threadpool(services.tags.base_predictions, tenant, data)
    return ok(custom=custom, base=base)


@router.get("/custom/predict/{image_id}")
def predict_added_image(image_id: str, tenant: SeedTenantDep, services: ServicesDep) -> dict[str, Any]:
    return ok(custom=services.tags.predict_added(tenant, image_id, None))


@router.get("/custom/predict/{tag}/{image_id}")
def predict_added_image_one_tag(
    tag: str, image_id: str, tenant: SeedTenantDep, services: ServicesDep
) -> dict[str, Any]:
    return ok(custom=services.tags.predict_added(tenant, image_id, tag))


@router.post("/set_state")
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


@router.get("/get_state")
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
