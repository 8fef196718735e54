"""Seed 001's API, the SLEAP microservice (../shared/seeds/001_*.txt; docs/seeds/001.md).

A thin router over the core: a base64 7z dataset becomes a pose dataset (DatasetService), a
training_config becomes PoseParams and a pose training job (JobService), a video becomes a
pose inference job, and the per-epoch metrics and job times answer the stats and info routes.

The names this API hands out are aliases in the JobStore: a model_uid (a UUID, as the seed
documents) stands for a Trainyard model id in namespace "001.model", its data keeping the
training_config as the client sent it (model-info echoes it) and the training job's id; a
results_id (an integer, as documented) stands for an inference job id in "001.results".

Errors are undocumented in the seed; they are {"error": "<what is wrong>"} with the status the
core gives the problem (400 unreadable body, 404 unknown id, 409 wrong state, 413 too large,
422 invalid content).
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import uuid
from email.utils import format_datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Path as PathParam
from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ...bootstrap import Services
from ...domain import Alias, Job, JobStatus, Model
from ...errors import InvalidInput, NotFound, PayloadTooLarge
from ...params import PoseParams
from ...services.archives import SEVEN_ZIP_MAGIC
from ...services.jobs import PoseInferJobRequest, PoseTrainJobRequest, VideoInput, results_prefix
from ...services.models import RESULT_MEDIA_TYPES
from ..deps import ServicesDep, declared_body, download_response, read_json_body, remove_quietly
from ..errors import describe_validation_error
from ..idempotency import SeedIdempotent
from .common import SeedTenantDep, seed_router


def render_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


router = seed_router(render_error)

MODEL_NAMESPACE = "001.model"
RESULTS_NAMESPACE = "001.results"
RESULTS_COUNTER = "001.results"
# The seed's heads are SingleInstanceConfmapsHeadConfig: one animal per frame.
SEED_MODEL_TYPE = "single_instance"
PRETRAINED_ENCODERS = (
    "vgg16", "vgg19",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50", "resnext101",
    "inceptionv3", "inceptionresnetv2",
    "densenet121", "densenet169", "densenet201",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152",
    "seresnext50", "seresnext101",
    "senet154",
    "mobilenet", "mobilenetv2",
    "efficientnetb0", "efficientnetb1", "efficientnetb2", "efficientnetb3", "efficientnetb4",
    "efficientnetb5",
)  # fmt: skip
# Base64 makes a file a third larger; the body also carries the JSON around it.
BASE64_BODY_SLACK = 64 * 1024


def _whole_number(value: object) -> object:
    """A JSON number written 2.0 is the integer 2 to the seed's Python clients; a string or a
    fraction stays as it is, for the strict int check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class TrainingConfig(BaseModel):
    """training_config exactly as the seed documents it; strict, so "2" is not a number."""

    model_config = ConfigDict(extra="forbid", strict=True)

    test_fraction: float = Field(ge=0, le=0.9)
    num_epochs: WholeNumber = Field(ge=1, le=1000)
    learning_rate: float = Field(gt=0, le=1)
    backbone_model: Literal["unet", "leap", "hourglass", "resnet", "pretrained_encoder"]
    pretrained_encoder: str | None = None
    heads_sigma: float = Field(gt=0, le=50)
    heads_output_stride: Annotated[Literal[1, 2, 4, 8, 16, 32], BeforeValidator(_whole_number)]

    @field_validator("pretrained_encoder")
    @classmethod
    def _known_encoder(cls, value: str | None) -> str | None:
        if value is not None and value not in PRETRAINED_ENCODERS:
            raise ValueError(f"must be one of {', '.join(PRETRAINED_ENCODERS)}")
        return value

    @model_validator(mode="after")
    def _encoder_named_when_chosen(self) -> TrainingConfig:
        if self.backbone_model == "pretrained_encoder" and self.pretrained_encoder is None:
            raise ValueError("pretrained_encoder is required when backbone_model is 'pretrained_encoder'")
        return self

    def pose_params(self) -> PoseParams:
        """The core's parameters; PoseParams maps the seed's backbone names and refuses a
        pretrained encoder (it needs ImageNet weights this service never downloads)."""
        try:
            return PoseParams(
                model_type=SEED_MODEL_TYPE,
                backbone=self.backbone_model,
                epochs=self.num_epochs,
                learning_rate=self.learning_rate,
                validation_fraction=self.test_fraction,
                sigma=self.heads_sigma,
                output_stride=self.heads_output_stride,
            )
        except ValidationError as exc:
            if self.backbone_model == "pretrained_encoder":
                raise InvalidInput(
                    f"training_config.backbone_model: 'pretrained_encoder' ({self.pretrained_encoder})"
                    " is not available: a pretrained encoder needs ImageNet weights, which this"
                    " service does not download; use backbone_model unet, leap, hourglass or resnet"
                ) from None
            reasons = "; ".join(
                str(e.get("msg", "invalid")).removeprefix("Value error, ") for e in exc.errors()
            )
            raise InvalidInput(f"training_config: {reasons}") from None


class TrainNetworkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    training_dataset: str = Field(min_length=1)
    training_config: TrainingConfig


class VideoInferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    video_base64: str = Field(min_length=1)
    file_name: str = Field(min_length=1, max_length=200)
    model_uid: str = Field(min_length=1, max_length=100)


RequestT = TypeVar("RequestT", bound=BaseModel)


def _json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its JSON itself (to cap its size and
    answer unreadable bodies in the seed's form), with nested models inlined: a route's
    schema cannot point into the model's own $defs."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return declared_body({"application/json": inline(schema)})


def _parse(model: type[RequestT], body: dict[str, Any]) -> RequestT:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None


def _body_limit(services: Services) -> int:
    return services.settings.inline_limit * 4 // 3 + BASE64_BODY_SLACK


def _spool_base64(text: str, field: str, services: Services, suffix: str) -> Path:
    """Decode a base64 field to a temporary file, refusing what is not base64 or too large."""
    try:
        # Line breaks are what base64.encodebytes and many tools put in; they are not data.
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field}: not valid base64 ({exc})") from None
    if not data:
        raise InvalidInput(f"{field}: decodes to an empty file")
    limit = services.settings.inline_limit
    if len(data) > limit:
        raise PayloadTooLarge(f"{field}: the decoded file is {len(data)} bytes; at most {limit}")
    root = services.settings.tmp_root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix="seed001-", suffix=suffix, delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


def _model_alias(services: Services, tenant: str, model_uid: str) -> Alias:
    alias = services.store.get_alias(tenant, MODEL_NAMESPACE, model_uid)
    if alias is None:
        raise NotFound(f"model_uid {model_uid} not found")
    return alias


def _model_and_job(services: Services, tenant: str, model_uid: str) -> tuple[Alias, Model, Job]:
    alias = _model_alias(services, tenant, model_uid)
    model = services.store.get_model(tenant, alias.target)
    if model is None:  # deleted through /v1/models
        raise NotFound(f"model_uid {model_uid} not found (its model was deleted)")
    return alias, model, services.jobs.get(tenant, model.job_id)


# --- training ---------------------------------------------------------------------------------


@router.post(
    "/api/train-network",
    summary="Train a pose model on a base64 7z SLEAP dataset",
    openapi_extra=_json_body_doc(TrainNetworkRequest),
)
async def train_network(
    request: Request, services: ServicesDep, tenant: SeedTenantDep, call: SeedIdempotent
) -> Any:
    if call.replayed is not None:
        return call.replayed
    body = await read_json_body(request, _body_limit(services))
    parsed = _parse(TrainNetworkRequest, body)
    params = parsed.training_config.pose_params()  # refused before anything is stored
    archive = _spool_base64(parsed.training_dataset, "training_dataset", services, ".7z")
    try:
        with archive.open("rb") as handle:
            if not handle.read(len(SEVEN_ZIP_MAGIC)) == SEVEN_ZIP_MAGIC:
                raise InvalidInput("training_dataset: not a 7z archive")
        model_uid, task_id = str(uuid.uuid4()), str(uuid.uuid4())
        dataset = await run_in_threadpool(
            services.datasets.create_pose_dataset,
            tenant,
            f"seed001-{model_uid}",
            [(archive, "training_dataset.7z")],
        )
    finally:
        remove_quietly(archive)
    job_request = PoseTrainJobRequest(
        type="train", task="pose", dataset_id=dataset.id, model_name=f"seed001-{model_uid}", params=params
    )
    try:
        job = await run_in_threadpool(services.jobs.create_job, tenant, job_request)
    except BaseException:
        services.datasets.delete(tenant, dataset.id)  # the dataset exists only for this model
        raise
    try:
        services.store.put_alias(
            Alias(
                tenant_id=tenant,
                namespace=MODEL_NAMESPACE,
                name=model_uid,
                target=job.model_id,
                data={
                    "training_config": parsed.training_config.model_dump(),
                    "task_id": task_id,
                    "job_id": job.id,
                    "dataset_id": dataset.id,
                },
            )
        )
    except BaseException:
        # Without its alias no client can reach the model: stop the run rather than leave it.
        if not services.jobs.get(tenant, job.id).status.is_terminal:
            services.jobs.cancel(tenant, job.id)
        raise
    return call.remember({"model_uid": model_uid, "task_id": task_id})


@router.get("/api/learning-stats", summary="Per-epoch loss, lr and val_loss, keyed by epoch from 0")
def learning_stats(
    services: ServicesDep,
    tenant: SeedTenantDep,
    model_uid: Annotated[str, Query(min_length=1, max_length=100)],
) -> dict[str, dict[str, float]]:
    _, _, job = _model_and_job(services, tenant, model_uid)
    epochs = services.jobs.metrics(tenant, job.id)
    if not epochs:
        return {}  # as documented: training began but no epoch has ended
    stats: dict[str, dict[str, float]] = {"loss": {}, "lr": {}, "val_loss": {}}
    for entry in epochs:
        key = str(entry.epoch - 1)  # the core counts epochs from 1, the seed from 0
        for name, value in (("loss", entry.loss), ("lr", entry.lr), ("val_loss", entry.val_loss)):
            if value is not None:  # val_loss is absent with test_fraction 0
                stats[name][key] = value
    return stats


def _http_date(moment: Any) -> str | None:
    """The seed's date format, RFC 7231's (Flask's): "Sun, 31 Mar 2024 12:58:33 GMT"."""
    return None if moment is None else format_datetime(moment.replace(microsecond=0), usegmt=True)


@router.get("/api/model-info", summary="A model's training_config, whether it trains, and when")
def model_info(
    services: ServicesDep,
    tenant: SeedTenantDep,
    model_uid: Annotated[str, Query(min_length=1, max_length=100)],
) -> dict[str, Any]:
    alias, _, job = _model_and_job(services, tenant, model_uid)
    info = {
        **alias.data["training_config"],
        "currently_training": not job.status.is_terminal,
        "started_training_at": _http_date(job.started_at),
        "finished_training_at": _http_date(job.finished_at),
    }
    return dict(sorted(info.items()))  # Flask's jsonify sorts keys, as the seed's example shows


# --- video inference --------------------------------------------------------------------------


@router.post(
    "/api/video-inference",
    summary="Run a trained model on a base64 video → results_id",
    openapi_extra=_json_body_doc(VideoInferenceRequest),
)
async def video_inference(
    request: Request, services: ServicesDep, tenant: SeedTenantDep, call: SeedIdempotent
) -> Any:
    if call.replayed is not None:
        return call.replayed
    body = await read_json_body(request, _body_limit(services))
    parsed = _parse(VideoInferenceRequest, body)
    alias = _model_alias(services, tenant, parsed.model_uid)
    video_path = _spool_base64(parsed.video_base64, "video_base64", services, ".video")
    try:
        video = VideoInput.uploaded(video_path, parsed.file_name)
        job_request = PoseInferJobRequest(type="infer", task="pose", model_id=alias.target)
        job = await run_in_threadpool(services.jobs.create_job, tenant, job_request, None, video)
    finally:
        remove_quietly(video_path)
    # numbered only once the job exists, so a refused request consumes no results_id
    results_id = services.store.next_number(tenant, RESULTS_COUNTER)
    services.store.put_alias(
        Alias(
            tenant_id=tenant,
            namespace=RESULTS_NAMESPACE,
            name=str(results_id),
            target=job.id,
            data={"model_uid": parsed.model_uid, "file_name": video.filename},
        )
    )
    return call.remember({"results_id": results_id})


ResultsId = Annotated[int, PathParam(ge=1, le=2**53)]


def _results_job(services: Services, tenant: str, results_id: int) -> tuple[Alias, Job]:
    alias = services.store.get_alias(tenant, RESULTS_NAMESPACE, str(results_id))
    if alias is None:
        raise NotFound(f"results_id {results_id} not found")
    return alias, services.jobs.get(tenant, alias.target)


@router.get(
    "/api/video-inference/{results_id}",
    summary="A video inference's status and, once it has succeeded, its predictions and downloads",
)
def video_inference_results(
    results_id: ResultsId, request: Request, services: ServicesDep, tenant: SeedTenantDep
) -> dict[str, Any]:
    alias, job = _results_job(services, tenant, results_id)
    answer: dict[str, Any] = {
        "results_id": results_id,
        "model_uid": alias.data["model_uid"],
        "file_name": alias.data["file_name"],
        "status": job.status.value,
        "ready": job.status is JobStatus.SUCCEEDED,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "error": job.error,
    }
    if job.status is not JobStatus.SUCCEEDED:
        return answer
    result = services.models.results(tenant, job.id)
    predictions = json.loads(
        services.blobs.get_bytes(results_prefix(tenant, job.id) + result["files"]["json"])
    )
    base = str(request.url).split("?", 1)[0].rstrip("/")
    return {
        **answer,
        "frames": result["frames"],
        "video": result["video"],
        "skeleton": predictions["skeleton"],
        "predictions": predictions["frames"],
        "downloads": {kind: f"{base}/{kind}" for kind in result["files"]},
    }


@router.get(
    "/api/video-inference/{results_id}/{kind}",
    summary="Download one result: slp, analysis_h5, json, preview_video or preview_image",
    response_model=None,
)
def download_video_inference_result(
    results_id: ResultsId, kind: str, services: ServicesDep, tenant: SeedTenantDep
) -> FileResponse | RedirectResponse:
    _, job = _results_job(services, tenant, results_id)
    location = services.models.result_location(tenant, job.id, kind)
    return download_response(location, RESULT_MEDIA_TYPES[kind])
