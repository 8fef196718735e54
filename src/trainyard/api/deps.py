"""Request dependencies: the services, the caller's tenant, pagination and body limits."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.datastructures import FormData, UploadFile

from ..bootstrap import Services
from ..domain import Task
from ..errors import BadRequest, InvalidInput, PayloadTooLarge, Unauthorized
from ..ports import Page
from ..services.models import ExportLocation


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_tenant(request: Request, services: ServicesDep) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return services.tenants.authenticate(key.strip())


TenantDep = Annotated[str, Depends(get_tenant)]


class Pagination:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
        cursor: Annotated[
            str | None, Query(max_length=500, description="next_cursor of the previous page")
        ] = None,
    ) -> None:
        self.limit = limit
        self.cursor = cursor


PaginationDep = Annotated[Pagination, Depends()]


def page_body(page: Page, render: Any) -> dict[str, Any]:
    return {"items": [render(item) for item in page.items], "next_cursor": page.next_cursor}


UPLOAD_FLOW_HINT = "; send larger files through POST /v1/uploads and refer to the upload_id"


def check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body is {declared} bytes; the inline limit is {limit} bytes{UPLOAD_FLOW_HINT}"
        )


# the tasks a dataset upload can be for (tags and embedders are seed 003's jobs, not datasets)
DATASET_TASKS = (Task.CLASSIFICATION, Task.POSE, Task.DETECTION)


def parse_task(value: object) -> Task:
    """A dataset's task from a form or JSON field; classification when absent."""
    if value is None:
        return Task.CLASSIFICATION
    task = next((t for t in DATASET_TASKS if t.value == str(value)), None)
    if task is None:
        raise InvalidInput(f"task: must be one of {', '.join(t.value for t in DATASET_TASKS)}")
    return task


def reject_unknown_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")


async def read_json_body(request: Request, limit: int) -> dict[str, Any]:
    check_declared_size(request, limit)
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(f"request body is over the {limit}-byte inline limit{UPLOAD_FLOW_HINT}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    except RecursionError:
        # the parser recurses once per level: thousands of "[" would otherwise be a 500
        raise BadRequest(f"body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    if _json_depth(data) > MAX_JSON_DEPTH:
        raise BadRequest(f"body is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


# No request body of the API nests deeper than a few levels; deeper ones are refused before any
# code walks them (recursive validators and renderers would otherwise hit Python's stack limit).
MAX_JSON_DEPTH = 32


def _json_depth(value: object) -> int:
    """How deeply lists and objects nest in `value`, walked without recursion."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


async def multipart_form(request: Request, max_files: int = 1) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise BadRequest("send multipart/form-data")
    try:
        return await request.form(max_files=max_files, max_fields=20)
    except Exception as exc:  # the parser's errors are not a stable public type
        raise BadRequest(f"unreadable multipart body: {exc}") from exc


async def spool_chunks(
    chunks: AsyncIterator[bytes], directory: Path, limit: int, what: str, hint: str = ""
) -> Path:
    """Write streamed bytes to a temporary file, stopping at `limit` bytes: the cap holds while
    reading, so a body that declares no length (or lies about it) cannot fill the disk. On any
    error the partial file is removed."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", delete=False)
    path = Path(handle.name)
    written = 0
    try:
        with handle:
            async for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise PayloadTooLarge(f"{what} is over the {limit}-byte limit{hint}")
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def spool_upload(upload: UploadFile, directory: Path, limit: int) -> Path:
    """Copy a multipart file field to disk, stopping at `limit` bytes."""

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(1024 * 1024):
            yield chunk

    return await spool_chunks(chunks(), directory, limit, f"file {upload.filename!r}", UPLOAD_FLOW_HINT)


def remove_quietly(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def download_response(location: ExportLocation, media_type: str) -> FileResponse | RedirectResponse:
    """A stored file for the client: a 307 to a presigned URL (S3: the bytes never pass through
    the API function), or the local file streamed."""
    if location.url is not None:
        return RedirectResponse(location.url, status_code=307)
    assert location.path is not None
    return FileResponse(location.path, media_type=media_type, filename=location.filename)


def declared_body(content: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself (to cap its size while reading,
    or to answer in a seed's own form): the required body it takes, as {media type: schema}."""
    return {
        "requestBody": {"required": True, "content": {kind: {"schema": s} for kind, s in content.items()}}
    }
