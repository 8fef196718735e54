from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse

from ..errors import BadRequest, InvalidInput
from ..services.images import decode_base64_image
from ..services.models import EXPORT_MEDIA_TYPES
from .deps import (
    PaginationDep,
    ServicesDep,
    TenantDep,
    check_declared_size,
    download_response,
    multipart_form,
    read_json_body,
    reject_unknown_fields,
)

router = APIRouter(prefix="/v1/models", tags=["models"])

MAX_TOP_K = 100


@router.get("")
def list_models(services: ServicesDep, tenant: TenantDep, page: PaginationDep) -> dict[str, Any]:
    page_ = services.models.page(tenant, page.limit, page.cursor)
    return {"items": [services.models.public(m) for m in page_.items], "next_cursor": page_.next_cursor}


@router.get("/{model_id}")
def get_model(model_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return services.models.public(services.models.get(tenant, model_id))


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


def _top_k(value: object) -> int:
    try:
        top_k = int(str(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"top_k: expected an integer, got {value!r}") from exc
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k: must be between 1 and {MAX_TOP_K}")
    return top_k


@router.post(
    "/{model_id}/predict",
    summary="Predict one image: multipart `file` (+ `top_k`) or JSON {image_b64, top_k}",
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
        image = await upload.read()
        top_k = _top_k(form.get("top_k") or request.query_params.get("top_k") or 5)
    elif content_type.startswith("application/json"):
        body = await read_json_body(request, limit)
        reject_unknown_fields(body, {"image_b64", "top_k"})
        image = decode_base64_image(body.get("image_b64"))
        top_k = _top_k(body.get("top_k", request.query_params.get("top_k", 5)))
    else:
        raise BadRequest("send multipart/form-data with a 'file' field, or JSON {image_b64}")
    return await run_in_threadpool(services.models.predict, tenant, model_id, image, top_k)
