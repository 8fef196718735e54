"""Seed 000's API, /models (../shared/seeds/000_*.txt; docs/seeds/000.md): numbered models
trained on numbered datasets, deleted by number, and fed new images to fine-tune them.

A thin router: training is JobService's, incremental training and the numbering are
services/model_versions.py's. A seed model number stands for a list of Trainyard model
versions (the latest answers); `?version=N` reads an earlier one. Training is asynchronous:
every model view carries its training status beside the documented fields.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ...bootstrap import Services
from ...domain import Image, Model, ModelStatus, Task
from ...errors import Conflict, InvalidInput, NotFound
from ...params import ClassifierParams
from ...ports import iter_pages
from ...services.jobs import TrainJobRequest
from ...services.model_versions import (
    SEED000_MODELS,
    FedImage,
    ModelFeeder,
    SeedNumbers,
    VersionedModel,
    VersionedModels,
)
from ...services.models import DEFAULT_TOP_K, MAX_TOP_K
from ..deps import ServicesDep
from ..idempotency import SeedIdempotent
from .common import SeedTenantDep, seed_router

DATASETS = "000.dataset"
IMAGES = "000.image"

# nn_type is the index of nn_name in this table (the seed's VGG16 is 1); each maps to a
# trainer backbone. Every backbone but the small CNN starts from ImageNet weights, as the
# seed's Keras applications did (the weights must be installed: TRAINYARD_WEIGHTS_DIR).
NN_NAMES = ("CNN", "VGG16", "ResNet50", "MobileNet", "MobileNetV2", "EfficientNetB0")
BACKBONES = ("small_cnn", "vgg16", "resnet50", "mobilenet", "mobilenet_v2", "efficientnet_b0")
# The seed's parameter names and the core's, for those that differ only by name.
CORE_PARAMETER = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "validation_split": "validation_split",
    "layer2retrain": "layers_to_retrain",
    "seed": "seed",
    "shuffle": "shuffle",
    "use_imageGenerator": "augment",
    "learning_rate": "learning_rate",
}
SEED_PARAMETER = {core: seed for seed, core in CORE_PARAMETER.items()} | {
    "image_size": "image_height",
    "backbone": "nn_name",
}


def render_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


router = seed_router(render_error)


class Parameters(BaseModel):
    """`parameters` of POST /models/train: the documented keys, types checked here, bounds by
    the core's ClassifierParams (errors name the seed's key)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    epochs: int | None = None
    batch_size: int | None = None
    validation_split: float | None = None
    num_predictions: int | None = Field(None, ge=1, le=MAX_TOP_K)
    layer2retrain: int | None = None
    seed: int | None = None
    shuffle: bool | None = None
    use_imageGenerator: bool | None = None  # noqa: N815 (the seed's name)
    image_height: int | None = None
    image_width: int | None = None
    image_size: int | None = None
    nn_type: int | None = None
    nn_name: str | None = None
    use_rgb: bool | None = None
    learning_rate: float | None = None


class TrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: StrictStr = Field(min_length=1, max_length=200)
    dataset_id: StrictInt | StrictStr
    description: StrictStr | None = Field(None, max_length=2000)
    parameters: Literal["Default"] | Parameters | None = None


class FeedImageBody(BaseModel):
    """A new image (image_b64 + label, metadata optional) or the id of a stored one."""

    model_config = ConfigDict(extra="forbid")

    id: StrictInt | None = None
    image_b64: StrictStr | None = None
    label: StrictStr | None = None
    name: StrictStr | None = Field(None, max_length=200)
    node_id: StrictInt | None = None
    object_id: StrictInt | None = None

    @model_validator(mode="after")
    def _new_or_stored(self) -> FeedImageBody:
        if self.id is not None:
            extra = [
                k
                for k in ("image_b64", "label", "name", "node_id", "object_id")
                if getattr(self, k) is not None
            ]
            if extra:
                raise ValueError(
                    f"give either id (a stored image) or image_b64 and label, not both ({', '.join(extra)})"
                )
        elif self.image_b64 is None or self.label is None:
            raise ValueError("a new image needs image_b64 and label; a stored one, its id")
        return self


class FeedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[FeedImageBody] = Field(min_length=1, max_length=1000)


# --- requests into core terms -----------------------------------------------------------------


def _backbone(parameters: Parameters) -> str | None:
    by_type = by_name = None
    if parameters.nn_type is not None:
        if not 0 <= parameters.nn_type < len(NN_NAMES):
            table = ", ".join(f"{i}: {n}" for i, n in enumerate(NN_NAMES))
            raise InvalidInput(f"parameters.nn_type: {parameters.nn_type} is not one of {table}")
        by_type = BACKBONES[parameters.nn_type]
    if parameters.nn_name is not None:
        lowered = [n.lower() for n in NN_NAMES]
        if parameters.nn_name.lower() not in lowered:
            raise InvalidInput(
                f"parameters.nn_name: {parameters.nn_name!r} is not one of {', '.join(NN_NAMES)}"
            )
        by_name = BACKBONES[lowered.index(parameters.nn_name.lower())]
    if by_type and by_name and by_type != by_name:
        raise InvalidInput(
            f"parameters.nn_type {parameters.nn_type} is {NN_NAMES[BACKBONES.index(by_type)]},"
            f" but nn_name is {parameters.nn_name!r}"
        )
    return by_type or by_name


def core_parameters(given: Parameters | str | None) -> tuple[ClassifierParams, int]:
    """The core's training parameters and num_predictions for the seed's `parameters`
    ("Default", {} or absent: the core's defaults)."""
    parameters = given if isinstance(given, Parameters) else Parameters()
    core: dict[str, Any] = {
        core_name: getattr(parameters, seed_name)
        for seed_name, core_name in CORE_PARAMETER.items()
        if getattr(parameters, seed_name) is not None
    }
    sizes = {
        name: value
        for name in ("image_height", "image_width", "image_size")
        if (value := getattr(parameters, name)) is not None
    }
    if len(set(sizes.values())) > 1:
        raise InvalidInput(
            f"parameters.{', '.join(sizes)}: must be equal ({', '.join(map(str, sizes.values()))}):"
            " models take square images"
        )
    if sizes:
        core["image_size"] = next(iter(sizes.values()))
    if parameters.use_rgb is False:
        raise InvalidInput("parameters.use_rgb: only RGB models are trained (use_rgb true)")
    backbone = _backbone(parameters)
    if backbone is not None:
        core["backbone"] = backbone
        core["weights"] = None if backbone == "small_cnn" else "imagenet"
    try:
        params = ClassifierParams.model_validate(core)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:10]:
            field = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"parameters.{SEED_PARAMETER.get(field, field) or 'parameters'}: {error['msg']}")
        raise InvalidInput("; ".join(problems)) from None
    return params, parameters.num_predictions or DEFAULT_TOP_K


def _dataset_id(services: Services, tenant: str, given: int | str) -> str:
    """The seed's integer dataset ids (GET /datasets), or a Trainyard `ds_…` id."""
    # isascii: "²".isdigit() is true but int() refuses it
    if isinstance(given, str) and not (given.isascii() and given.isdigit()):
        if not 1 <= len(given) <= 100:  # checked here, not left to the core request (a 500)
            raise InvalidInput("dataset_id: a seed dataset number or a Trainyard id (1 to 100 characters)")
        return given
    alias = SeedNumbers(services.store, tenant, DATASETS).get(int(given))
    if alias is None:
        raise NotFound(f"dataset {given} not found; GET /datasets lists the dataset ids")
    return alias.target


# --- the documented model view ----------------------------------------------------------------


def _view(services: Services, tenant: str, versioned: VersionedModel, version: int) -> dict[str, Any]:
    model = services.models.get(tenant, versioned.versions[version - 1])
    job = services.jobs.get(tenant, model.job_id)
    params = model.params
    backbone = str(params.get("backbone", "small_cnn"))
    try:
        dataset_name: str | None = services.datasets.get(tenant, model.dataset_id).name
    except NotFound:
        dataset_name = None
    return {
        "batch_size": params["batch_size"],
        "dataset": dataset_name,
        "dataset_id": SeedNumbers(services.store, tenant, DATASETS).number_of(model.dataset_id),
        "description": model.description or "",
        "epochs": params["epochs"],
        "id": versioned.number,
        "image_height": params["image_size"],
        "image_width": params["image_size"],
        "layer2retrain": params.get("layers_to_retrain"),
        "name": model.name,
        "nn_name": NN_NAMES[BACKBONES.index(backbone)],
        "nn_type": BACKBONES.index(backbone),
        "num_predictions": versioned.data.get("num_predictions", DEFAULT_TOP_K),
        "plot_loss": services.models.plot_loss(model),
        "seed": params.get("seed"),
        "shuffle": params["shuffle"],
        "use_imageGenerator": params["augment"],
        "use_rgb": True,
        "validation_split": params["validation_split"],
        # beyond the document: training runs asynchronously, and models have versions
        "status": model.status.value,
        "training_status": job.status.value,
        "current_epoch": job.current_epoch,
        "error": job.error,
        "classes": model.classes,
        "version": version,
        "versions": len(versioned.versions),
        "model_id": model.id,
        "job_id": job.id,
    }


# --- routes -------------------------------------------------------------------------------------


@router.get("/models")
def list_models(services: ServicesDep, tenant: SeedTenantDep) -> list[dict[str, Any]]:
    models = VersionedModels(services.store, tenant, SEED000_MODELS).all()
    return [_view(services, tenant, m, len(m.versions)) for m in models]


@router.get("/models/{model_id}")
def get_model(
    model_id: int,
    services: ServicesDep,
    tenant: SeedTenantDep,
    version: int | None = Query(
        None, ge=1, description="an earlier version (1 is the first); default the latest"
    ),
) -> dict[str, Any]:
    versioned = VersionedModels(services.store, tenant, SEED000_MODELS).get(model_id)
    if version is not None and version > len(versioned.versions):
        raise NotFound(
            f"model {model_id} has {len(versioned.versions)} version(s); version {version} not found"
        )
    return _view(services, tenant, versioned, version or len(versioned.versions))


@router.post("/models/train")
def train_model(body: TrainBody, services: ServicesDep, tenant: SeedTenantDep, call: SeedIdempotent) -> Any:
    if call.replayed is not None:
        return call.replayed
    params, num_predictions = core_parameters(body.parameters)
    request = TrainJobRequest(
        type="train",
        dataset_id=_dataset_id(services, tenant, body.dataset_id),
        model_name=body.model_name,
        description=body.description,
        params=params,
    )
    job = services.jobs.create_job(tenant, request)
    versioned = VersionedModels(services.store, tenant, SEED000_MODELS).create(
        job.model_id, {"num_predictions": num_predictions}
    )
    return call.remember(_view(services, tenant, versioned, 1))


@router.delete("/models/{model_id}")
def delete_model(model_id: int, services: ServicesDep, tenant: SeedTenantDep) -> str:
    models = VersionedModels(services.store, tenant, SEED000_MODELS)
    versioned = models.get(model_id)
    records = [m for v in versioned.versions if (m := services.store.get_model(tenant, v)) is not None]
    training = [m.id for m in records if m.status is ModelStatus.TRAINING]
    if training:  # checked for every version first, so nothing is deleted
        raise Conflict(
            f"model {model_id} is still training ({', '.join(training)}); delete it once it has finished"
        )
    for record in records:
        services.models.delete(tenant, record.id)
    models.delete(model_id)
    return f"Modèle {model_id} supprimé"


def _base_version(services: Services, tenant: str, versioned: VersionedModel) -> Model:
    """The version a feed fine-tunes: the latest one that finished training (a failed
    feed leaves the one before it current)."""
    for model_id in reversed(versioned.versions):
        model = services.store.get_model(tenant, model_id)
        if model is None or model.status is ModelStatus.FAILED:
            continue
        if model.status is ModelStatus.TRAINING:
            raise Conflict(
                f"model {versioned.number} is still training; feed it once its training has finished"
            )
        return model
    raise Conflict(f"model {versioned.number} has no trained version to fine-tune")


def _stored_image(services: Services, tenant: str, number: int) -> Image:
    alias = SeedNumbers(services.store, tenant, IMAGES).get(number)
    found = None
    if alias is not None:
        images = services.store.list_images(tenant, str(alias.data.get("dataset_id", "")))
        found = next((i for i in images if i.id == alias.target), None)
    if found is None:
        raise NotFound(f"image {number} not found; GET /datasets/<id>/images lists the image ids")
    return found


@router.put("/models/feed/{model_id}")
def feed_model(
    model_id: int, body: FeedBody, services: ServicesDep, tenant: SeedTenantDep, call: SeedIdempotent
) -> Any:
    if call.replayed is not None:
        return call.replayed
    models = VersionedModels(services.store, tenant, SEED000_MODELS)
    versioned = models.get(model_id)
    base = _base_version(services, tenant, versioned)
    stored_numbers = [entry.id for entry in body.images if entry.id is not None]
    repeated = sorted({n for n in stored_numbers if stored_numbers.count(n) > 1})
    if repeated:
        raise InvalidInput(f"images: image id(s) {', '.join(map(str, repeated))} listed more than once")
    stored = [_stored_image(services, tenant, n) for n in stored_numbers]
    new = [
        FedImage(
            str(entry.image_b64),
            str(entry.label),
            {k: v for k in ("name", "node_id", "object_id") if (v := getattr(entry, k)) is not None},
        )
        for entry in body.images
        if entry.id is None
    ]
    feeder = ModelFeeder(services.store, services.blobs, services.datasets, services.jobs)
    result = feeder.fine_tune(tenant, base, new, stored)
    numbers = SeedNumbers(services.store, tenant, IMAGES)
    fed = [
        numbers.number_of(image.id, {"dataset_id": image.dataset_id, "label": image.label, **metadata})
        for image, metadata in result.added
    ]
    versioned = models.add_version(versioned, result.job.model_id)
    return call.remember(
        {**_view(services, tenant, versioned, len(versioned.versions)), "fed_image_ids": fed}
    )


@router.get("/datasets")
def list_datasets(services: ServicesDep, tenant: SeedTenantDep) -> list[dict[str, Any]]:
    """Not in the seed document: where the integer dataset ids of POST /models/train come from."""
    numbers = SeedNumbers(services.store, tenant, DATASETS)
    datasets = iter_pages(lambda cursor: services.datasets.page(tenant, 100, cursor))
    listed = [
        {
            "id": numbers.number_of(d.id),
            "dataset_id": d.id,
            "name": d.name,
            "classes": d.classes,
            "image_count": d.image_count,
        }
        for d in datasets
        if d.task is Task.CLASSIFICATION
    ]
    return sorted(listed, key=lambda d: d["id"])


@router.get("/datasets/{dataset_id}/images")
def list_dataset_images(
    dataset_id: int, services: ServicesDep, tenant: SeedTenantDep
) -> list[dict[str, Any]]:
    """Not in the seed document: the integer image ids PUT /models/feed/<id> accepts."""
    target = services.datasets.get(tenant, _dataset_id(services, tenant, dataset_id)).id
    numbers = SeedNumbers(services.store, tenant, IMAGES)
    listed: list[dict[str, Any]] = []
    for image in services.store.list_images(tenant, target):
        number = numbers.number_of(image.id, {"dataset_id": target, "label": image.label})
        alias = numbers.get(number)
        metadata: dict[str, Any] = {} if alias is None else alias.data
        listed.append(
            {
                "id": number,
                "label": image.label,
                "split": image.split,
                "image_id": image.id,
                **{k: metadata[k] for k in ("name", "node_id", "object_id") if k in metadata},
            }
        )
    return sorted(listed, key=lambda i: i["id"])
