"""Versioned models and incremental training, and the integer ids seed APIs hand out.

- `SeedNumbers`: a seed API's integer ids (1, 2, 3, …) for Trainyard records, both ways:
  `<kind>` maps a number to its record's id, `<kind>#of` maps the id back, so a record gets
  one number even when two requests number it at once (the reverse alias is the unique key).
- `VersionedModels`: a model that keeps every version. Its number points at the latest
  Trainyard model; the alias's data lists every version, oldest first. A version is an
  ordinary model record, so it stays readable and answers predictions until deleted.
- `versions_of`: the versions a model belongs among, for any client (GET /v1/models/<id>/versions).
- `ModelFeeder`: incremental training. New images (and stored images, by id) go into the
  model's dataset, and a training job fine-tunes the current version's weights
  (`initial_model_id`) into a new version.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..domain import Alias, Image, Job, Model, ModelStatus, Task
from ..errors import Conflict, InvalidInput, NotFound
from ..params import ClassifierParams
from ..ports import BlobStore, JobStore
from .datasets import DatasetService
from .jobs import JobService, TrainJobRequest

REVERSE_SUFFIX = "#of"
# Where seed 000 keeps its numbered, versioned models (api/seeds/seed000.py); /v1 reads the
# versions from here too (GET /v1/models/<id>/versions).
SEED000_MODELS = "000.model"


class SeedNumbers:
    """One kind of numbered record ("000.dataset", "000.image", …) of one tenant."""

    def __init__(self, store: JobStore, tenant_id: str, kind: str) -> None:
        self._store = store
        self._tenant = tenant_id
        self._kind = kind

    def number_of(self, target: str, data: dict[str, Any] | None = None) -> int:
        """The record's number, given now when it has none (with `data` kept beside it)."""
        reverse = self._kind + REVERSE_SUFFIX
        existing = self._store.get_alias(self._tenant, reverse, target)
        if existing is not None:
            return int(existing.target)
        number = self._store.next_number(self._tenant, self._kind)
        try:
            self._store.put_alias(
                Alias(tenant_id=self._tenant, namespace=reverse, name=target, target=str(number))
            )
        except Conflict:  # numbered concurrently: that number stands, this one stays unused
            raced = self._store.get_alias(self._tenant, reverse, target)
            if raced is None:
                raise
            return int(raced.target)
        self._store.put_alias(
            Alias(
                tenant_id=self._tenant, namespace=self._kind, name=str(number), target=target, data=data or {}
            )
        )
        return number

    def find_number(self, target: str) -> int | None:
        existing = self._store.get_alias(self._tenant, self._kind + REVERSE_SUFFIX, target)
        return None if existing is None else int(existing.target)

    def get(self, number: int) -> Alias | None:
        return self._store.get_alias(self._tenant, self._kind, str(number))

    def forget(self, number: int) -> None:
        alias = self.get(number)
        if alias is not None:
            self._store.delete_alias(self._tenant, self._kind + REVERSE_SUFFIX, alias.target)
            self._store.delete_alias(self._tenant, self._kind, str(number))


@dataclass(frozen=True)
class VersionedModel:
    number: int
    versions: list[str]  # Trainyard model ids, oldest first; the last is the current one
    data: dict[str, Any]  # what the seed API keeps besides (e.g. its own parameters)

    @property
    def latest(self) -> str:
        return self.versions[-1]


class VersionedModels:
    """The numbered, versioned models of one seed API (namespace e.g. "000.model")."""

    def __init__(self, store: JobStore, tenant_id: str, namespace: str) -> None:
        self._store = store
        self._tenant = tenant_id
        self._namespace = namespace

    def _from_alias(self, alias: Alias) -> VersionedModel:
        data = dict(alias.data)
        versions = [str(v) for v in data.pop("versions")]
        return VersionedModel(int(alias.name), versions, data)

    def create(self, model_id: str, data: dict[str, Any]) -> VersionedModel:
        number = self._store.next_number(self._tenant, self._namespace)
        self._store.put_alias(
            Alias(
                tenant_id=self._tenant,
                namespace=self._namespace,
                name=str(number),
                target=model_id,
                data={**data, "versions": [model_id]},
            )
        )
        return VersionedModel(number, [model_id], data)

    def get(self, number: int) -> VersionedModel:
        alias = self._store.get_alias(self._tenant, self._namespace, str(number))
        if alias is None:
            raise NotFound(f"model {number} not found")
        return self._from_alias(alias)

    def all(self) -> list[VersionedModel]:
        return sorted(
            (self._from_alias(a) for a in self._store.list_aliases(self._tenant, self._namespace)),
            key=lambda m: m.number,
        )

    def add_version(self, model: VersionedModel, model_id: str) -> VersionedModel:
        versions = [*model.versions, model_id]
        self._store.update_alias(
            Alias(
                tenant_id=self._tenant,
                namespace=self._namespace,
                name=str(model.number),
                target=model_id,
                data={**model.data, "versions": versions},
            )
        )
        return VersionedModel(model.number, versions, model.data)

    def delete(self, number: int) -> None:
        self._store.delete_alias(self._tenant, self._namespace, str(number))


def versions_of(store: JobStore, tenant_id: str, model: Model, namespace: str) -> list[str]:
    """The model ids of `model`'s versions, oldest first: those of the numbered model of
    `namespace` it is a version of (later versions included), else its lineage, followed back
    through `initial_model_id` (what a fine-tuning job records) to the first model."""
    for alias in store.list_aliases(tenant_id, namespace):
        versions = [str(v) for v in alias.data.get("versions", [])]
        if model.id in versions:
            return versions
    lineage = [model.id]
    earlier = model.params.get("initial_model_id")
    while isinstance(earlier, str) and earlier not in lineage:
        lineage.insert(0, earlier)
        found = store.get_model(tenant_id, earlier)
        earlier = found.params.get("initial_model_id") if found is not None else None
    return lineage


@dataclass(frozen=True)
class FedImage:
    """A new image for incremental training: base64 bytes, its class, and the metadata the
    caller keeps with it (name, node_id, object_id, …)."""

    image_b64: str
    label: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class FeedResult:
    job: Job
    added: list[tuple[Image, dict[str, Any]]]  # the images stored, each with its metadata


class ModelFeeder:
    def __init__(self, store: JobStore, blobs: BlobStore, datasets: DatasetService, jobs: JobService) -> None:
        self._store = store
        self._blobs = blobs
        self._datasets = datasets
        self._jobs = jobs

    def fine_tune(self, tenant_id: str, base: Model, new: list[FedImage], stored: list[Image]) -> FeedResult:
        """Add the images to `base`'s dataset and start a job that fine-tunes `base` on the
        whole dataset with its own parameters. A stored image already in that dataset is
        trained on again, not copied. Everything is checked before anything is stored."""
        if base.task is not Task.CLASSIFICATION:
            raise InvalidInput(f"model {base.id} is a {base.task.value} model; only classifiers are fed")
        if base.status is not ModelStatus.READY:
            raise Conflict(f"model {base.id} is {base.status.value}; feed it once its training has finished")
        if "keras" not in base.exports:
            raise InvalidInput(
                f"model {base.id} was trained without a keras export, which fine-tuning starts from"
            )
        if not new and not stored:
            raise InvalidInput("images: at least one image (new, or the id of a stored one) is needed")
        entries: list[dict[str, object]] = [{"image_b64": i.image_b64, "label": i.label} for i in new]
        metadata = [i.metadata for i in new]
        for image in stored:
            if image.dataset_id != base.dataset_id:  # copied in, so the dataset owns its images
                data = base64.b64encode(self._blobs.get_bytes(image.blob_key)).decode()
                entries.append({"image_b64": data, "label": image.label})
                metadata.append({"copied_from": image.id})
        before = {i.id for i in self._store.list_images(tenant_id, base.dataset_id)}
        if entries:
            self._datasets.add_images(tenant_id, base.dataset_id, entries)
        # add_images makes each record after writing its blob, in the order given, so their
        # timestamps follow the entries' order: that pairs each stored image with its metadata.
        added_images = [i for i in self._store.list_images(tenant_id, base.dataset_id) if i.id not in before]
        added_images.sort(key=lambda i: i.created_at)
        # the model's training parameters; what else its record keeps (exports, lineage) is not one
        params = {k: v for k, v in base.params.items() if k in ClassifierParams.model_fields}
        request = TrainJobRequest(
            type="train",
            dataset_id=base.dataset_id,
            model_name=base.name,
            description=base.description,
            params=ClassifierParams.model_validate(params),
            exports=base.params.get("exports"),
            initial_model_id=base.id,
        )
        job = self._jobs.create_job(tenant_id, request)
        return FeedResult(job, list(zip(added_images, metadata, strict=False)))
