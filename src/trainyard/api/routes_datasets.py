from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse

from ..domain import Dataset, Task
from ..errors import InvalidInput
from ..services.datasets import MAX_IMAGES_PER_APPEND, MAX_LABEL_LENGTH, SPLITS
from ..services.images import MEDIA_TYPE_BY_SUFFIX
from .deps import (
    PaginationDep,
    ServicesDep,
    TenantDep,
    check_declared_size,
    declared_body,
    multipart_form,
    page_body,
    parse_task,
    read_json_body,
    reject_unknown_fields,
    remove_quietly,
    spool_upload,
)
from .errors import ERROR_RESPONSES
from .idempotency import CoreIdempotent
from .routes_models import BASE64_IMAGE
from .routes_uploads import dataset_from_upload_request

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


MAX_POSE_FILES = 20  # a .slp and its videos, sent as separate `file` fields


def public_dataset(dataset: Dataset) -> dict[str, Any]:
    view = dataset.model_dump(
        mode="json", include={"id", "name", "task", "classes", "image_count", "created_at"}
    )
    # pose: skeletons, labelled frames, instances, videos; detection: format, box counts, splits
    if dataset.task is not Task.CLASSIFICATION:
        view.update(dataset.model_dump(mode="json", include={"details"})["details"])
    return view


UPLOAD_BODY = declared_body(
    {
        "application/json": {
            "type": "object",
            "required": ["name", "upload_id"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "upload_id": {"type": "string", "description": "from POST /v1/uploads"},
                "task": {"type": "string", "enum": ["classification", "detection", "pose"]},
            },
        },
        "multipart/form-data": {
            "type": "object",
            "required": ["name", "file"],
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "task": {"type": "string", "enum": ["classification", "detection", "pose"]},
                "file": {
                    "type": "string",
                    "format": "binary",
                    "description": "classification: a .zip or .tar.gz of <class>/<image> or"
                    " train|val/<class>/<image>. detection: a .zip/.tar.gz/.tar/.7z of"
                    " images with COCO JSON or YOLO txt labels. pose: a .pkg.slp, or a"
                    " .zip/.7z/.tar.gz holding a .slp and its videos, or (repeated `file`"
                    " fields) a .slp and its videos",
                },
            },
        },
    }
)


# The form is read by hand rather than declared with Form()/UploadFile parameters, so that
# the parser's limits (one file, few fields) and the error messages are the service's own.
@router.post(
    "",
    status_code=201,
    summary="Upload a dataset: class folders (classification), images with boxes (detection) or"
    " SLEAP labels (pose)",
    openapi_extra=UPLOAD_BODY,
)
async def create_dataset(
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    call: CoreIdempotent,
) -> Any:
    if call.replayed is not None:
        return call.replayed
    if request.headers.get("content-type", "").startswith("application/json"):
        # {"name", "upload_id"}: the archive was sent beforehand through POST /v1/uploads
        return call.remember(public_dataset(await dataset_from_upload_request(request, tenant)), 201)
    limit = services.settings.inline_limit
    check_declared_size(request, limit + 64 * 1024)
    form = await multipart_form(request, max_files=MAX_POSE_FILES)
    name, task = form.get("name"), parse_task(form.get("task"))
    files = [f for f in form.getlist("file") if not isinstance(f, str)]
    if not isinstance(name, str):
        raise InvalidInput("name: a form field 'name' is required")
    if not files:
        raise InvalidInput("file: a multipart file field named 'file' is required")
    if len(files) > 1 and task is not Task.POSE:
        raise InvalidInput(
            "file: send one archive; several files are for pose datasets (a .slp and its videos)"
        )
    spooled: list[tuple[Path, str | None]] = []
    try:
        for file in files:  # the inline limit holds for the request as a whole
            spooled.append((await spool_upload(file, services.settings.tmp_root, limit), file.filename))
        if task is Task.POSE:
            dataset = await run_in_threadpool(services.datasets.create_pose_dataset, tenant, name, spooled)
        else:
            dataset = await run_in_threadpool(
                services.datasets.create_from_archive, tenant, name, spooled[0][0], task
            )
    finally:
        for path, _ in spooled:
            remove_quietly(path)
    return call.remember(public_dataset(dataset), 201)


@router.get("")
def list_datasets(services: ServicesDep, tenant: TenantDep, page: PaginationDep) -> dict[str, Any]:
    return page_body(services.datasets.page(tenant, page.limit, page.cursor), public_dataset)


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    dataset = services.datasets.get(tenant, dataset_id)
    if dataset.task is not Task.CLASSIFICATION:
        return public_dataset(dataset)
    images = services.store.list_images(tenant, dataset_id)
    counts = Counter((i.label, i.split or "unsplit") for i in images)
    view = public_dataset(dataset)
    view["class_counts"] = {
        label: {split: n for (lbl, split), n in counts.items() if lbl == label} for label in dataset.classes
    }
    return view


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: str, services: ServicesDep, tenant: TenantDep) -> None:
    services.datasets.delete(tenant, dataset_id)


@router.get(
    "/{dataset_id}/images",
    summary="Browse a dataset's pictures: images with their class (classification) or boxes"
    " (detection), or a pose dataset's sample frames with each instance's points",
)
def list_dataset_images(
    dataset_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    page: PaginationDep,
    label: Annotated[
        str | None,
        Query(max_length=200, description="only this class's images (detection: images with a box of it)"),
    ] = None,
) -> dict[str, Any]:
    return page_body(services.datasets.image_page(tenant, dataset_id, label, page.limit, page.cursor), dict)


@router.get(
    "/{dataset_id}/images/{image_id}/content",
    summary="A picture's bytes, by an id from GET /v1/datasets/{dataset_id}/images (on AWS: a 307"
    " to a presigned S3 URL)",
    response_model=None,
    responses={
        200: {"content": {media_type: {} for media_type in sorted(set(MEDIA_TYPE_BY_SUFFIX.values()))}},
        307: {"description": "the picture is at the presigned URL in Location"},
    },
)
def get_dataset_image_content(
    dataset_id: str, image_id: str, services: ServicesDep, tenant: TenantDep
) -> FileResponse | RedirectResponse:
    content = services.datasets.image_content(tenant, dataset_id, image_id)
    if content.url is not None:
        return RedirectResponse(content.url, status_code=307)
    assert content.path is not None
    return FileResponse(content.path, media_type=content.media_type)


# An entry's other fields are ignored, as the service reads only these three.
ADD_IMAGES_BODY = declared_body(
    {
        "application/json": {
            "type": "object",
            "required": ["images"],
            "additionalProperties": False,
            "properties": {
                "images": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_IMAGES_PER_APPEND,
                    "items": {
                        "type": "object",
                        "required": ["image_b64", "label"],
                        "properties": {
                            "image_b64": BASE64_IMAGE,
                            "label": {
                                "type": "string",
                                "maxLength": MAX_LABEL_LENGTH,
                                "pattern": "\\S",
                                "description": "the class; a new one is added to the dataset's classes",
                            },
                            "split": {"enum": [*SPLITS, None]},
                        },
                    },
                }
            },
        }
    }
)


@router.post(
    "/{dataset_id}/images",
    summary="Append base64 images: {images: [{image_b64, label, split?}]}",
    openapi_extra=ADD_IMAGES_BODY,
)
async def add_images(
    dataset_id: str,
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    call: CoreIdempotent,
) -> Any:
    if call.replayed is not None:  # the images were added once; a retry must not add them again
        return call.replayed
    body = await read_json_body(request, services.settings.inline_limit)
    images = body.get("images")
    reject_unknown_fields(body, {"images"})
    if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
        raise InvalidInput("images: expected a list of {image_b64, label} objects")
    dataset = await run_in_threadpool(services.datasets.add_images, tenant, dataset_id, images)
    return call.remember({**public_dataset(dataset), "added": len(images)})  # all are added or none
