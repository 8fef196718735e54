"""Seed 002, the AI trainer (../shared/seeds/002_*.txt): token auth, GET /checkserver/,
POST /starttraining/ and GET /statustraining/<profile_id>/<project_name>.

A thin router: a training request becomes a core training job (classification or detection)
whose dataset ExternalTrainingService pulls from the caller's S3 bucket or Azure container
after the answer. The (profile_id, project_name) pair is an alias (namespace "002.project")
of the job, so a second request for the pair is refused before anything is recorded.

Error forms, as the seed's clients read them: starttraining answers
{status: "FAILED", project_name, profile_id, dataset, message}; checkserver
{result: "Failed", message}; statustraining {result: "FAILED", message}.
docs/seeds/002.md says where the document is silent and what was chosen.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...bootstrap import Services
from ...domain import Alias, Job, JobStatus, new_id
from ...errors import BadRequest, Conflict, InvalidInput, TrainyardError
from ...params import EXPORT_FORMATS, ClassifierParams, DetectionParams, normalise_exports
from ...services.external_datasets import ExternalSource, ExternalTraining, plain_summary
from ...services.jobs import WEBHOOK_URL, DetectionTrainJobRequest, TrainJobRequest
from ...services.outbound import UnsafeURL, check_public_url
from ..deps import ServicesDep, declared_body
from ..errors import STATUS_BY_ERROR, describe_validation_error
from ..idempotency import TokenIdempotent
from .common import TokenTenantDep, seed_router, token_tenant

PROJECTS = "002.project"
# The seed's names for the core's statuses. The document spells the download status
# "DOWNLOADIND"; a client written against it compares with that string, so it is kept.
SEED_STATUS = {
    JobStatus.PENDING: "PENDING",
    JobStatus.DOWNLOADING: "DOWNLOADIND",
    JobStatus.DOWNLOADED: "DOWNLOADED",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.EXPORTING: "EXPORTING",
    JobStatus.SUCCEEDED: "SUCCESS",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "FAILED",  # the seed has no cancelled status; the message says so
}
DEFAULT_EXPORTS = ["onnx", "coreml"]
# Both names are path segments of GET /statustraining/<profile_id>/<project_name>.
PATH_SEGMENT = r"^[^/\x00-\x1f\x7f]+$"
# The seed's parameter names for the core's, to name a refused value as the client sent it.
SEED_FIELD = {"lr_step_size": "step_size", "lr_gamma": "gamma"}
# The credentials each storage type needs (ExternalSource refuses the request without them).
STORAGE_CREDENTIALS = {
    "aws": ("aws_access_key_id", "aws_secret_access_key"),
    "azure": ("azure_connection_string",),
}


class StartTrainingRequest(BaseModel):
    """The body of POST /starttraining/, every field as the document names and bounds it."""

    # strict: a string or a number where the schema says boolean, or a string or boolean where
    # it says number, is refused as the schema says (found by the fuzzer: "zipped": 0 passed)
    model_config = ConfigDict(extra="forbid", strict=True)

    profile_id: str = Field(min_length=1, max_length=200, pattern=PATH_SEGMENT)
    project_name: str = Field(min_length=1, max_length=200, pattern=PATH_SEGMENT)
    # documented as mandatory, yet "if nothing is provided, the default URL ... will be used"
    webhook_url: str | None = Field(None, max_length=2000)
    epochs: int = Field(10, gt=1, lt=100)  # the document: "> 1 and < 100"
    learning_rate: float = Field(0.01, gt=0, le=1)
    image_size: int = Field(224, le=768)  # the lower bound is the core's (32; detection 64)
    batch_size: int = Field(36, ge=1)  # the upper bound is the setting seed002_max_batch_size
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    export: list[str] = Field(default_factory=lambda: list(DEFAULT_EXPORTS), max_length=10)
    model_type: Literal["classification", "detection"]
    storage_type: Literal["aws", "azure"]
    container: str = Field(min_length=1, max_length=1024)
    folder: str = Field(min_length=1, max_length=1024)
    zipped: bool
    azure_connection_string: str | None = Field(None, max_length=4096)
    aws_access_key_id: str | None = Field(None, max_length=256)
    aws_secret_access_key: str | None = Field(None, max_length=256)

    @field_validator("epochs", "image_size", "batch_size", "step_size", mode="before")
    @classmethod
    def _whole_float_is_an_integer(cls, value: object) -> object:
        """JSON has one number type: 10.0 is the integer 10, which strict mode would refuse."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


def _start_training_schema() -> dict[str, Any]:
    """StartTrainingRequest's schema with what _parse and the core add: an http(s) webhook_url
    ("" means the default, as null does), known export formats, the bounds of the core's
    parameters (ClassifierParams, DetectionParams) for the model_type chosen, and the
    credentials of the storage_type chosen. The cap seed002_max_batch_size is a setting of the
    app, not of this module, so the schema cannot say it."""
    schema = StartTrainingRequest.model_json_schema()
    webhook_url = schema["properties"]["webhook_url"]
    webhook_url["anyOf"] = [
        {**choice, "pattern": WEBHOOK_URL} if choice["type"] == "string" else choice
        for choice in webhook_url["anyOf"]
    ] + [{"const": ""}]
    schema["properties"]["export"]["items"]["enum"] = list(EXPORT_FORMATS)
    core_fields = {seed: core for core, seed in SEED_FIELD.items()}
    bounds = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    schema["allOf"] = []
    for model_type, params in (("classification", ClassifierParams), ("detection", DetectionParams)):
        core = params.model_json_schema()["properties"]
        limits = {
            name: {key: value for key, value in core[core_fields.get(name, name)].items() if key in bounds}
            for name in ("epochs", "learning_rate", "image_size", "batch_size", "step_size", "gamma")
        }
        schema["allOf"].append(
            {"if": {"properties": {"model_type": {"const": model_type}}}, "then": {"properties": limits}}
        )
    for storage_type, credentials in STORAGE_CREDENTIALS.items():
        schema["allOf"].append(
            {
                "if": {"properties": {"storage_type": {"const": storage_type}}},
                "then": {
                    "required": list(credentials),
                    "properties": {name: {"type": "string", "minLength": 1} for name in credentials},
                },
            }
        )
    return schema


# --- error forms ---------------------------------------------------------------------------


def _training_failed(status: int, message: str, echo: dict[str, Any] | None = None) -> JSONResponse:
    echo = echo or {}
    return JSONResponse(
        {
            "status": "FAILED",
            "project_name": echo.get("project_name"),
            "profile_id": echo.get("profile_id"),
            "dataset": echo.get("dataset"),
            "message": message,
        },
        status_code=status,
    )


def render_training_error(status: int, code: str, message: str) -> JSONResponse:
    return _training_failed(status, message)


def render_checkserver_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"result": "Failed", "message": message}, status_code=status)


def render_status_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"result": "FAILED", "message": message}, status_code=status)


checkserver_router = seed_router(render_checkserver_error)
training_router = seed_router(render_training_error)
status_router = seed_router(render_status_error)


# --- GET /checkserver/ -----------------------------------------------------------------------


@checkserver_router.get("/checkserver/", summary="Seed 002: is the trainer up (token auth)")
@checkserver_router.get("/checkserver", include_in_schema=False)
def check_server(services: ServicesDep, _: TokenTenantDep) -> JSONResponse:
    settings = services.settings
    if settings.backend == "local" and not settings.resolved_trainer_python.exists():
        return render_checkserver_error(
            503, "unavailable", f"the trainer's environment is missing ({settings.resolved_trainer_python})"
        )
    return JSONResponse({"result": "Ok", "message": "Trainyard is ready to train"})


# --- POST /starttraining/ ----------------------------------------------------------------------


@training_router.post(
    "/starttraining/",
    summary="Seed 002: train on a dataset in S3 or Azure Blob",
    openapi_extra=declared_body({"application/json": _start_training_schema()}),
)
@training_router.post("/starttraining", include_in_schema=False)
async def start_training(request: Request, services: ServicesDep, call: TokenIdempotent) -> Response:
    if call.replayed is not None:
        return call.replayed
    body: Any = None
    try:
        body = await _json_body(request)
        tenant_id = token_tenant(request, services)
        start = _parse(body)
        echo = {
            "project_name": start.project_name,
            "profile_id": start.profile_id,
            "dataset": f"{start.container}/{start.folder}",
        }
        if start.batch_size > services.settings.seed002_max_batch_size:
            raise InvalidInput(f"batch_size: at most {services.settings.seed002_max_batch_size}")
        webhook_url = start.webhook_url or services.settings.seed002_default_webhook_url
        training = ExternalTraining(
            tenant_id=tenant_id,
            job_id=new_id("job"),
            dataset_name=start.project_name,
            request=_core_request(start, webhook_url),
            source=ExternalSource(
                storage_type=start.storage_type,
                container=start.container,
                folder=start.folder,
                zipped=start.zipped,
                aws_access_key_id=start.aws_access_key_id,
                aws_secret_access_key=start.aws_secret_access_key,
                azure_connection_string=start.azure_connection_string,
            ),
        )
        services.external_training.check_available()
        # SSRF: the webhook and the storage endpoint must be public https; refused before
        # the project is claimed or anything recorded
        if webhook_url:
            try:
                check_public_url(webhook_url, services.settings.allows_loopback_urls)
            except UnsafeURL as exc:
                raise UnsafeURL(f"webhook_url: {exc.message}") from None
        services.external_training.check_endpoints(training.source)
        _claim_project(services, training, start)
        try:
            services.external_training.start(training)
        except BaseException:
            services.store.delete_alias(
                tenant_id, PROJECTS, _project_key(start.profile_id, start.project_name)
            )
            raise
    except TrainyardError as exc:
        status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 400)
        return _training_failed(status, exc.message, _echo_of(body))
    return call.remember(
        JSONResponse(
            {
                **echo,
                "status": "PENDING",
                "message": f"training {training.job_id} is recorded; its dataset is being downloaded",
            }
        )
    )


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


def _parse(body: Any) -> StartTrainingRequest:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    try:
        start = StartTrainingRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    if start.webhook_url and not _matches_webhook(start.webhook_url):
        raise InvalidInput("webhook_url: must be an http:// or https:// URL")
    try:
        normalise_exports(start.export)  # the core's formats; it says which are unknown
    except ValueError as exc:
        raise InvalidInput(f"export: {exc}") from None
    return start


def _matches_webhook(url: str) -> bool:
    return re.match(WEBHOOK_URL, url) is not None


def _core_request(
    start: StartTrainingRequest, webhook_url: str | None
) -> TrainJobRequest | DetectionTrainJobRequest:
    """The core's training request; its dataset id is filled in once the download stored it."""
    values = {
        "epochs": start.epochs,
        "learning_rate": start.learning_rate,
        "image_size": start.image_size,
        "batch_size": start.batch_size,
        "lr_step_size": start.step_size,
        "lr_gamma": start.gamma,
    }
    common: dict[str, Any] = {
        "type": "train",
        "dataset_id": "pending-download",  # replaced before the job launches
        "model_name": start.project_name,
        "description": f"seed 002 project {start.project_name!r} of profile {start.profile_id!r}",
        "exports": start.export,
        "webhook_url": webhook_url,
    }
    try:
        if start.model_type == "detection":
            return DetectionTrainJobRequest(task="detection", params=DetectionParams(**values), **common)
        return TrainJobRequest(task="classification", params=ClassifierParams(**values), **common)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        for core, seed in SEED_FIELD.items():
            message = message.replace(core, seed)
        raise InvalidInput(message) from None


def _project_key(profile_id: str, project_name: str) -> str:
    return f"{profile_id}/{project_name}"


def _claim_project(services: Services, training: ExternalTraining, start: StartTrainingRequest) -> None:
    alias = Alias(
        tenant_id=training.tenant_id,
        namespace=PROJECTS,
        name=_project_key(start.profile_id, start.project_name),
        target=training.job_id,
        data={"model_type": start.model_type, **plain_summary(training.source)},
    )
    try:
        services.store.put_alias(alias)
    except Conflict:
        raise Conflict(
            f"project_name {start.project_name!r} already exists for profile_id {start.profile_id!r}"
        ) from None


def _echo_of(body: Any) -> dict[str, Any]:
    """The identifying fields of a refused request, as far as they are strings."""
    if not isinstance(body, dict):
        return {}
    echo = {k: body.get(k) for k in ("project_name", "profile_id") if isinstance(body.get(k), str)}
    if isinstance(body.get("container"), str) and isinstance(body.get("folder"), str):
        echo["dataset"] = f"{body['container']}/{body['folder']}"
    return echo


# --- GET /statustraining/<profile_id>/<project_name> -----------------------------------------


@status_router.get(
    "/statustraining/{profile_id}/{project_name}", summary="Seed 002: a training's status and progress"
)
def status_training(
    profile_id: str, project_name: str, services: ServicesDep, tenant_id: TokenTenantDep
) -> JSONResponse:
    alias = services.store.get_alias(tenant_id, PROJECTS, _project_key(profile_id, project_name))
    if alias is None:
        return render_status_error(
            404, "not_found", f"no training for profile_id {profile_id!r} and project_name {project_name!r}"
        )
    job = services.store.get_job(tenant_id, alias.target)
    return JSONResponse(_status_body(job, alias))


def _status_body(job: Job | None, alias: Alias) -> dict[str, Any]:
    if job is None:  # the alias is written just before its job: a request in between
        return {
            "result": "PENDING",
            "current_epoch": 0,
            "epochs": None,
            "loss": None,
            "accuracy": None,
            "lastupdate": alias.updated_at.isoformat(),
            "last_epoch_duration_seconds": None,
        }
    body: dict[str, Any] = {
        "result": SEED_STATUS[job.status],
        "current_epoch": job.current_epoch,
        "epochs": job.epochs,
        "loss": job.loss,
        "accuracy": job.accuracy,
        "lastupdate": job.updated_at.isoformat(),
        "last_epoch_duration_seconds": job.last_epoch_duration_seconds,
    }
    if job.status is JobStatus.CANCELLED:
        body["message"] = "the training was cancelled"
    elif job.error:
        body["message"] = job.error
    return body


# One router for the seed mount (api/seeds/__init__.py); each part keeps its own error form.
router = APIRouter()
router.include_router(checkserver_router)
router.include_router(training_router)
router.include_router(status_router)
