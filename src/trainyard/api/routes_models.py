from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse

from ..errors import BadRequest, InvalidInput, PayloadTooLarge
from ..services.detection import MAX_DETECTIONS_LIMIT
from ..services.images import ALLOWED_FORMATS, DATA_URL_PREFIX, decode_base64_image
from ..services.model_versions import SEED000_MODELS, versions_of
from ..services.models import EXPORT_MEDIA_TYPES, MAX_TOP_K, PREDICT_OPTIONS
from .deps import (
    UPLOAD_FLOW_HINT,
    PaginationDep,
    ServicesDep,
    TenantDep,
    check_declared_size,
    declared_body,
    download_response,
    multipart_form,
    read_json_body,
    reject_unknown_fields,
)
from .errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)


@router.get("")
def list_models(services: ServicesDep, tenant: TenantDep, page: PaginationDep) -> dict[str, Any]:
    page_ = services.models.page(tenant, page.limit, page.cursor)
    return {"items": [services.models.public(m) for m in page_.items], "next_cursor": page_.next_cursor}


@router.get("/{model_id}")
def get_model(model_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return services.models.public(services.models.get(tenant, model_id))


@router.get(
    "/{model_id}/versions",
    summary="The model's versions, oldest first: those of the seed 000 model it belongs to"
    " (each feed adds one), else its fine-tuning lineage (initial_model_id)",
)
def list_versions(
    model_id: str, services: ServicesDep, tenant: TenantDep, page: PaginationDep
) -> dict[str, Any]:
    model = services.models.get(tenant, model_id)
    versions = versions_of(services.store, tenant, model, SEED000_MODELS)
    if page.cursor is not None and not (page.cursor.isascii() and page.cursor.isdigit()):
        raise InvalidInput("cursor: pass the next_cursor of the previous page")
    start = int(page.cursor or 0)
    end = start + page.limit
    items = []
    for number, version_id in enumerate(versions[start:end], start + 1):
        version = services.store.get_model(tenant, version_id)
        if version is not None:  # a version deleted on its own leaves its number unused
            items.append(
                {
                    "version": number,
                    **version.model_dump(
                        mode="json", include={"id", "name", "status", "job_id", "metrics", "created_at"}
                    ),
                }
            )
    return {"items": items, "next_cursor": str(end) if end < len(versions) else None}


@router.delete("/{model_id}", status_code=204)
def delete_model(model_id: str, services: ServicesDep, tenant: TenantDep) -> None:
    services.models.delete(tenant, model_id)


@router.get(
    "/{model_id}/exports/{fmt}",
    summary="Download an export: keras, onnx, tflite, sleap (on AWS: a 307 to a presigned S3 URL)",
    response_model=None,
)
def download_export(
    model_id: str, fmt: str, services: ServicesDep, tenant: TenantDep
) -> FileResponse | RedirectResponse:
    return download_response(services.models.export_location(tenant, model_id, fmt), EXPORT_MEDIA_TYPES[fmt])


def _options(given: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, object]:
    """The prediction options a request sets, in its form or JSON body, else in the query;
    the model decides which apply (models.py)."""
    options = {name: given.get(name, query.get(name)) for name in PREDICT_OPTIONS}
    return {name: value for name, value in options.items() if value is not None and value != ""}


# What decode_base64_image decodes: strict base64 (padded), after an optional data URL prefix.
BASE64_IMAGE = {
    "type": "string",
    "minLength": 1,
    "pattern": f"^(?:{DATA_URL_PREFIX.pattern.removeprefix('^')})?"
    "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    "description": f"an image file ({', '.join(ALLOWED_FORMATS)}) in base64, optionally as a data URL",
}
# The options as services/models.py bounds them; which apply is the model's task's choice.
PREDICT_OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "description": "classifiers"},
    "score_threshold": {"type": "number", "minimum": 0, "maximum": 1, "description": "detectors"},
    "max_detections": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_DETECTIONS_LIMIT,
        "description": "detectors",
    },
}
PREDICT_BODY = declared_body(
    {
        "multipart/form-data": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}, **PREDICT_OPTION_SCHEMAS},
        },
        "application/json": {
            "type": "object",
            "required": ["image_b64"],
            "additionalProperties": False,
            "properties": {"image_b64": BASE64_IMAGE, **PREDICT_OPTION_SCHEMAS},
        },
    }
)


@router.post(
    "/{model_id}/predict",
    summary="Predict one image: multipart `file` or JSON {image_b64}; a classifier takes `top_k`,"
    " a detector `score_threshold` and `max_detections`",
    openapi_extra=PREDICT_BODY,
)
async def predict(
    model_id: str, request: Request, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    limit = services.settings.inline_limit
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        check_declared_size(request, limit)
        form = await multipart_form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("file: a multipart file field named 'file' is required")
        image = await upload.read(limit + 1)  # a chunked body declares no length: cap the read
        if len(image) > limit:
            raise PayloadTooLarge(
                f"file {upload.filename!r} is over the {limit}-byte inline limit{UPLOAD_FLOW_HINT}"
            )
        options = _options(form, request.query_params)
    elif content_type.startswith("application/json"):
        body = await read_json_body(request, limit)
        reject_unknown_fields(body, {"image_b64", *PREDICT_OPTIONS})
        image = decode_base64_image(body.get("image_b64"))
        options = _options(body, request.query_params)
    else:
        raise BadRequest("send multipart/form-data with a 'file' field, or JSON {image_b64}")
    return await run_in_threadpool(services.models.predict, tenant, model_id, image, options)
