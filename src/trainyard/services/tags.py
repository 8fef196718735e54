"""Custom tags (seed 003): one-vs-rest classifiers over a frozen backbone's embeddings.

- The tenant's **embedder** is a frozen backbone the trainer container exports once to ONNX
  (a job of task `embedder`; containers/trainer/trainer/embedder.py): MobileNetV2 with
  ImageNet weights when they are installed, else a documented fixed-seed random conv net.
  The first call that needs it starts that job; the API embeds images with ONNX Runtime
  (the core Predictor) and never imports TensorFlow.
- An **image** is stored once as a blob and embedded once per embedder; the embedding is
  cached beside it (`embedding-<embedder fingerprint>.npy`).
- **Training a tag** is a job of task `tag` (trainer/tags.py, numpy only, seconds): the tag's
  examples' embeddings go in its channel, a logistic regression comes back as
  tag_model.json. It flows through the JobStore, launcher and events like every job.
- A tag's **current version** is its newest succeeded training job (or the weights a state
  tar brought, if newer); it is resolved when read, so nothing has to follow job events.

Records are aliases (store.put_alias): `003.image`/<image id> → the image blob; `003.tag`/<tag>;
`003.examples/<tag>`/<image id> → "positive" | "negative"; `003.task`/<task id> → job id and
`003.tag-tasks/<tag>`/<task id> → job id; `003.embedder`/current → the embedder job id.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import tarfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..domain import Alias, Job, JobStatus, JobType, Model, ModelStatus, Task, new_id, utcnow
from ..errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TrainyardError,
    Unavailable,
)
from ..params import encode_hyperparameters
from ..ports import BlobStore, ChannelFile, JobStore, LaunchSpec
from .images import CheckedImage, check_image
from .jobs import JobPlan, JobService, model_prefix
from .prediction import Predictor

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# The seed's error messages: a fixed list of codes (the response's `message`).
ERROR_CODES = frozenset(
    {
        "image_reading_error",
        "missing_data",
        "invalid_image_id",
        "image_exists",
        "image_not_found",
        "invalid_tag",
        "tag_not_found",
        "invalid_sample_type",
        "not_enough_samples",
        "model_not_trained",
        "training_error",
        "task_not_found",
        "base_model_not_ready",
        "base_model_unavailable",
        "state_error",
        "file_too_large",
        "invalid_request",
        "unauthorized",
        "not_found",
        "method_not_allowed",
        "unavailable",
        "conflict",
        "internal_error",
    }
)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SAMPLE_TYPES = ("positive", "negative")
EMBEDDER_NAMESPACE, EMBEDDER_NAME = "003.embedder", "current"
IMAGES, TAGS, TASKS = "003.image", "003.tag", "003.task"
TAG_MODEL_FILE = "tag_model.json"
EMBEDDER_MANIFEST = "trainyard_model.json"
STATE_SCHEMA = "trainyard.seed003-state/1"
STATE_MAX_MEMBERS = 100_000
BASE_TOP_LABELS = 5


def examples_namespace(tag: str) -> str:
    return f"003.examples/{tag}"


def tag_tasks_namespace(tag: str) -> str:
    return f"003.tag-tasks/{tag}"


def seed_error(kind: type[TrainyardError], code: str, message: str) -> TrainyardError:
    """A core error (its class sets the HTTP status) carrying one of the seed's codes."""
    error = kind(message)
    error.code = code
    return error


def checked_name(value: str, what: str, code: str) -> str:
    if not NAME.match(value):
        raise seed_error(
            InvalidInput,
            code,
            f"{what} {value!r} is not usable: 1-100 letters, digits, '_', '.', '-', starting with a"
            " letter or digit",
        )
    return value


def images_prefix(tenant_id: str, image_id: str) -> str:
    return f"tenants/{tenant_id}/seed003/images/{image_id}/"


@dataclass(frozen=True)
class Embedder:
    """The tenant's ready embedder: its model as the Predictor runs it, and a fingerprint of
    its ONNX file (embeddings and tag weights are valid only with the embedder they came from)."""

    model: Model
    fingerprint: str

    @property
    def base_model(self) -> str | None:
        value = self.model.manifest.get("base_model")
        return str(value) if value else None


@dataclass(frozen=True)
class TagWeights:
    embedder: str
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    source: str  # the job that fitted them, or "state" for imported weights

    def score(self, embedding: np.ndarray) -> float:
        import numpy as np

        logit = float(((embedding - self.mean) / self.scale) @ self.weights + self.bias)
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -60.0, 60.0))))


def parse_tag_weights(document: Any, source: str, where: str) -> TagWeights:
    """tag_model.json as the trainer writes it; InvalidInput (state_error) when it is not."""
    import numpy as np

    try:
        dimension = int(document["dimension"])
        arrays = [np.asarray(document[key], dtype=np.float64) for key in ("mean", "scale", "weights")]
        bias = float(document["bias"])
        embedder = str(document["embedder"])
    except (KeyError, TypeError, ValueError) as exc:
        raise seed_error(InvalidInput, "state_error", f"{where}: not a tag model ({exc})") from exc
    if any(a.shape != (dimension,) or not np.isfinite(a).all() for a in arrays) or not np.isfinite(bias):
        raise seed_error(InvalidInput, "state_error", f"{where}: weights must be {dimension} finite numbers")
    if (arrays[1] <= 0).any():
        raise seed_error(InvalidInput, "state_error", f"{where}: scale must be positive")
    return TagWeights(embedder, arrays[0], arrays[1], arrays[2], bias, source)


class TagService:
    def __init__(
        self,
        store: JobStore,
        blobs: BlobStore,
        jobs: JobService,
        predictor: Predictor,
        *,
        tmp_root: Path,
        max_image_pixels: int,
        embedder_wait_seconds: float,
        max_state_bytes: int,
        poll_seconds: float = 0.2,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._jobs = jobs
        self._predictor = predictor
        self._tmp_root = tmp_root
        self._max_pixels = max_image_pixels
        self._wait = embedder_wait_seconds
        self._max_state_bytes = max_state_bytes
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._fingerprints: dict[str, str] = {}  # embedder job id → fingerprint
        self._weights: OrderedDict[str, TagWeights] = OrderedDict()  # blob key → weights

    @property
    def max_state_bytes(self) -> int:
        return self._max_state_bytes

    # --- the embedder ---------------------------------------------------------------------

    def _embedder_job(self, tenant_id: str) -> Job:
        """The tenant's embedder job, started when there is none or the last one failed."""
        alias = self._store.get_alias(tenant_id, EMBEDDER_NAMESPACE, EMBEDDER_NAME)
        job = self._store.get_job(tenant_id, alias.target) if alias is not None else None
        if job is not None and job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return job
        job_id, output_id = new_id("job"), new_id("emb")
        claim = Alias(tenant_id=tenant_id, namespace=EMBEDDER_NAMESPACE, name=EMBEDDER_NAME, target=job_id)
        try:  # the alias is the claim: of two concurrent first calls only one launches
            if alias is None:
                self._store.put_alias(claim)
            else:
                self._store.update_alias(claim)
        except Conflict:
            return self._embedder_job(tenant_id)
        record = Job(
            id=job_id,
            tenant_id=tenant_id,
            type=JobType.TRAIN,
            task=Task.EMBEDDER,
            dataset_id=None,
            model_id=output_id,
            params={"seed": 0},
            epochs=1,
        )
        spec = LaunchSpec(
            job_id=job_id,
            container="trainer",
            hyperparameters=encode_hyperparameters({"job_id": job_id, "task": "embedder", "seed": 0}),
            channels={},
            model_prefix=model_prefix(tenant_id, output_id),
        )
        log.info("tenant %s: building the custom-tag embedder (job %s)", tenant_id, job_id)
        return self._jobs.create_planned(JobPlan(record, None, spec))

    def embedder(self, tenant_id: str, *, wait: bool = True) -> Embedder | None:
        """The ready embedder; while its job runs, None (wait=False) or wait for it up to the
        configured time, then Unavailable (base_model_not_ready)."""
        job = self._embedder_job(tenant_id)
        deadline = time.monotonic() + self._wait
        while not job.status.is_terminal:
            if not wait:
                return None
            if time.monotonic() > deadline:
                raise seed_error(
                    Unavailable,
                    "base_model_not_ready",
                    f"the embedder (job {job.id}) is still being built ({job.status.value}); retry shortly",
                )
            time.sleep(self._poll)
            job = self._jobs.get(tenant_id, job.id)
        if job.status is not JobStatus.SUCCEEDED:
            raise seed_error(
                Unavailable,
                "base_model_not_ready",
                f"building the embedder failed (job {job.id}: {job.error}); the next call retries",
            )
        prefix = model_prefix(tenant_id, job.model_id)
        manifest = json.loads(self._blobs.get_bytes(prefix + EMBEDDER_MANIFEST))
        model = Model(
            id=job.model_id,
            tenant_id=tenant_id,
            name="seed 003 embedder",
            task=Task.EMBEDDER,
            job_id=job.id,
            dataset_id="",
            status=ModelStatus.READY,
            classes=list(manifest.get("classes", [])),
            manifest=manifest,
        )
        with self._lock:
            fingerprint = self._fingerprints.get(job.id)
        if fingerprint is None:
            onnx = self._blobs.local_path(prefix + manifest["exports"]["onnx"]).read_bytes()
            fingerprint = hashlib.sha256(onnx).hexdigest()[:32]
            with self._lock:
                self._fingerprints[job.id] = fingerprint
        return Embedder(model, fingerprint)

    def _embed(self, embedder: Embedder, image: bytes) -> np.ndarray:
        return self._predictor.probabilities(embedder.model, image)

    # --- images ---------------------------------------------------------------------------

    def _checked_image(self, data: bytes, name: str = "data") -> CheckedImage:
        try:
            return check_image(data, name, self._max_pixels)
        except InvalidInput as exc:
            raise seed_error(InvalidInput, "image_reading_error", exc.message) from exc

    def _image(self, tenant_id: str, image_id: str) -> Alias:
        alias = self._store.get_alias(tenant_id, IMAGES, image_id)
        if alias is None:
            raise seed_error(NotFound, "image_not_found", f"image {image_id!r} not found; add it first")
        return alias

    def add_image(self, tenant_id: str, data: bytes, image_id: str | None) -> str:
        checked = self._checked_image(data)
        if image_id is not None:
            checked_name(image_id, "image_id", "invalid_image_id")
        for _ in range(20):
            name = image_id if image_id is not None else str(secrets.randbelow(10**12))
            blob_key = f"{images_prefix(tenant_id, name)}image.{checked.extension}"
            alias = Alias(
                tenant_id=tenant_id,
                namespace=IMAGES,
                name=name,
                target=blob_key,
                data={"width": checked.width, "height": checked.height, "embeddings": {}},
            )
            try:  # the alias claims the id before any byte is written under it
                self._store.put_alias(alias)
                break
            except Conflict:
                if image_id is not None:
                    raise seed_error(
                        Conflict, "image_exists", f"image {image_id!r} exists; choose another image_id"
                    ) from None
        else:  # pragma: no cover - 20 collisions in 10**12 random ids
            raise Conflict("could not pick a free image id")
        try:
            self._blobs.put_bytes(blob_key, checked.data)
        except Exception:
            self._store.delete_alias(tenant_id, IMAGES, name)
            raise
        embedder = self.embedder(tenant_id, wait=False)  # starts the embedder on first use
        if embedder is not None:
            self._embedding(tenant_id, alias, embedder)
        return name

    def _embedding(self, tenant_id: str, image: Alias, embedder: Embedder) -> str:
        """The blob key of the image's embedding by this embedder, computed on first need."""
        import numpy as np

        key = image.data.get("embeddings", {}).get(embedder.fingerprint)
        if key is not None and self._blobs.exists(key):
            return str(key)
        vector = self._embed(embedder, self._blobs.get_bytes(image.target))
        key = f"{images_prefix(tenant_id, image.name)}embedding-{embedder.fingerprint}.npy"
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        self._blobs.put_bytes(key, buffer.getvalue())
        current = self._store.get_alias(tenant_id, IMAGES, image.name) or image
        embeddings = {**current.data.get("embeddings", {}), embedder.fingerprint: key}
        self._store.update_alias(
            current.model_copy(
                update={"data": {**current.data, "embeddings": embeddings}, "updated_at": utcnow()}
            )
        )
        return key

    def _load_embedding(self, key: str) -> np.ndarray:
        import numpy as np

        vector: np.ndarray = np.load(io.BytesIO(self._blobs.get_bytes(key)), allow_pickle=False)
        return vector.astype(np.float64)

    # --- tags -----------------------------------------------------------------------------

    def _tag(self, tenant_id: str, tag: str) -> Alias:
        checked_name(tag, "tag", "invalid_tag")
        alias = self._store.get_alias(tenant_id, TAGS, tag)
        if alias is None:
            raise seed_error(NotFound, "tag_not_found", f"tag {tag!r} not found; assign images to it first")
        return alias

    def assign(self, tenant_id: str, image_id: str, sample_type: str, tag: str) -> dict[str, Any]:
        if sample_type not in SAMPLE_TYPES:
            raise seed_error(
                InvalidInput, "invalid_sample_type", f"type {sample_type!r}: must be positive or negative"
            )
        checked_name(tag, "tag", "invalid_tag")
        self._image(tenant_id, image_id)
        try:
            self._store.put_alias(Alias(tenant_id=tenant_id, namespace=TAGS, name=tag, target=tag))
        except Conflict:
            pass  # the tag exists: this image joins its examples
        example = Alias(
            tenant_id=tenant_id, namespace=examples_namespace(tag), name=image_id, target=sample_type
        )
        try:
            self._store.put_alias(example)
        except Conflict:  # assigned before: the latest assignment counts
            self._store.update_alias(example.model_copy(update={"updated_at": utcnow()}))
        return self._counts(tenant_id, tag)

    def _counts(self, tenant_id: str, tag: str) -> dict[str, Any]:
        examples = self._store.list_aliases(tenant_id, examples_namespace(tag))
        positives = sum(1 for e in examples if e.target == "positive")
        return {"tag": tag, "positives": positives, "negatives": len(examples) - positives}

    def list_tags(self, tenant_id: str) -> list[str]:
        return [alias.name for alias in self._store.list_aliases(tenant_id, TAGS)]

    def delete_tag(self, tenant_id: str, tag: str) -> None:
        """Reset: the tag, its examples, its versions; its running training jobs are cancelled."""
        self._tag(tenant_id, tag)
        for task in self._store.list_aliases(tenant_id, tag_tasks_namespace(tag)):
            job = self._store.get_job(tenant_id, task.target)
            if job is not None and not job.status.is_terminal:
                self._jobs.cancel(tenant_id, job.id)
            if job is not None:
                self._blobs.delete_prefix(model_prefix(tenant_id, job.model_id))
            self._store.delete_alias(tenant_id, tag_tasks_namespace(tag), task.name)
        for example in self._store.list_aliases(tenant_id, examples_namespace(tag)):
            self._store.delete_alias(tenant_id, examples_namespace(tag), example.name)
        self._blobs.delete_prefix(f"tenants/{tenant_id}/seed003/tags/{tag}/")
        self._store.delete_alias(tenant_id, TAGS, tag)

    def train(self, tenant_id: str, tag: str) -> str:
        """Start a training job for the tag on all its examples; returns the task id."""
        self._tag(tenant_id, tag)
        examples = self._store.list_aliases(tenant_id, examples_namespace(tag))
        counts = self._counts(tenant_id, tag)
        if not counts["positives"] or not counts["negatives"]:
            raise seed_error(
                InvalidInput,
                "not_enough_samples",
                f"tag {tag!r} has {counts['positives']} positive and {counts['negatives']} negative"
                " images; training needs at least one of each",
            )
        embedder = self.embedder(tenant_id)
        assert embedder is not None  # wait=True returns one or raises
        files, listed = [], []
        for example in examples:
            key = self._embedding(tenant_id, self._image(tenant_id, example.name), embedder)
            path = f"embeddings/{example.name}.npy"
            files.append(ChannelFile(key, path))
            listed.append({"path": path, "label": 1 if example.target == "positive" else 0})
        job_id, output_id = new_id("job"), new_id("tag")
        job = Job(
            id=job_id,
            tenant_id=tenant_id,
            type=JobType.TRAIN,
            task=Task.TAG,
            dataset_id=None,
            model_id=output_id,
            params={**counts, "embedder": embedder.fingerprint},
            epochs=1,
        )
        document = {"tag": tag, "embedder": embedder.fingerprint, "examples": listed}
        spec = LaunchSpec(
            job_id=job_id,
            container="trainer",
            hyperparameters=encode_hyperparameters({"job_id": job_id, "task": "tag"}),
            channels={"training": files},
            channel_documents={"training": {"examples.json": json.dumps(document)}},
            model_prefix=model_prefix(tenant_id, output_id),
        )
        task_id = str(uuid.uuid4())  # the original SDK's task ids were UUIDs
        self._store.put_alias(
            Alias(tenant_id=tenant_id, namespace=TASKS, name=task_id, target=job_id, data={"tag": tag})
        )
        self._store.put_alias(
            Alias(tenant_id=tenant_id, namespace=tag_tasks_namespace(tag), name=task_id, target=job_id)
        )
        self._jobs.create_planned(JobPlan(job, None, spec))
        return task_id

    def task_status(self, tenant_id: str, task_id: str) -> dict[str, Any]:
        alias = self._store.get_alias(tenant_id, TASKS, task_id)
        job = self._store.get_job(tenant_id, alias.target) if alias is not None else None
        if alias is None or job is None:
            raise seed_error(NotFound, "task_not_found", f"task {task_id!r} not found")
        base = {"task_id": task_id, "tag": alias.data.get("tag"), "job_id": job.id}
        if job.status is JobStatus.SUCCEEDED:
            return {
                "status": "ok",
                **base,
                "positives": job.params.get("positives"),
                "negatives": job.params.get("negatives"),
                "accuracy": job.accuracy,
                "loss": job.loss,
            }
        if job.status.is_terminal:
            return {
                "status": "error",
                "message": "training_error",
                **base,
                "detail": job.error or "cancelled",
            }
        return {"status": "ongoing", "message": f"training: {job.status.value}", **base}

    # --- tag versions and scores ---------------------------------------------------------

    def _weights_at(self, key: str, source: str) -> TagWeights:
        with self._lock:
            cached = self._weights.get(key)
            if cached is not None:
                self._weights.move_to_end(key)
                return cached
        weights = parse_tag_weights(json.loads(self._blobs.get_bytes(key)), source, key)
        with self._lock:
            self._weights[key] = weights
            while len(self._weights) > 256:
                self._weights.popitem(last=False)
        return weights

    def current_weights(self, tenant_id: str, tag_alias: Alias) -> TagWeights | None:
        """The tag's newest succeeded training, or the weights a state tar brought if newer."""
        imported = tag_alias.data.get("imported")
        imported_at = datetime.fromisoformat(imported["at"]) if imported else None
        for task in reversed(self._store.list_aliases(tenant_id, tag_tasks_namespace(tag_alias.name))):
            job = self._store.get_job(tenant_id, task.target)
            if job is None or job.status is not JobStatus.SUCCEEDED:
                continue
            if imported_at is not None and job.created_at < imported_at:
                break
            return self._weights_at(model_prefix(tenant_id, job.model_id) + TAG_MODEL_FILE, job.id)
        return self._weights_at(imported["key"], "state") if imported else None

    def _trained(self, tenant_id: str, tag: str, embedder: Embedder) -> TagWeights:
        weights = self.current_weights(tenant_id, self._tag(tenant_id, tag))
        if weights is None or weights.embedder != embedder.fingerprint:
            raise seed_error(
                Conflict,
                "model_not_trained",
                f"tag {tag!r} has no trained model"
                + ("" if weights is None else " for this deployment's embedder (retrain it)")
                + f"; train it with /custom/train/{tag}",
            )
        return weights

    def _scores(
        self, tenant_id: str, embedding: np.ndarray, embedder: Embedder, tag: str | None
    ) -> dict[str, float]:
        if tag is not None:
            return {tag: self._trained(tenant_id, tag, embedder).score(embedding)}
        scores = {}
        for alias in self._store.list_aliases(tenant_id, TAGS):
            weights = self.current_weights(tenant_id, alias)
            if weights is not None and weights.embedder == embedder.fingerprint:
                scores[alias.name] = weights.score(embedding)
        return scores

    def predict_upload(self, tenant_id: str, data: bytes, tag: str | None) -> dict[str, float]:
        self._checked_image(data)
        if tag is not None:
            self._tag(tenant_id, tag)  # an unknown tag fails before any embedding work
        embedder = self.embedder(tenant_id)
        assert embedder is not None
        return self._scores(tenant_id, self._embed(embedder, data), embedder, tag)

    def predict_added(self, tenant_id: str, image_id: str, tag: str | None) -> dict[str, float]:
        image = self._image(tenant_id, image_id)
        if tag is not None:
            self._tag(tenant_id, tag)
        embedder = self.embedder(tenant_id)
        assert embedder is not None
        embedding = self._load_embedding(self._embedding(tenant_id, image, embedder))
        return self._scores(tenant_id, embedding, embedder, tag)

    def base_predictions(self, tenant_id: str, data: bytes) -> dict[str, Any]:
        """The base model's top ImageNet labels, or why there are none."""
        import numpy as np

        embedder = self.embedder(tenant_id)
        assert embedder is not None
        labels_output = embedder.model.manifest.get("labels_output")
        if embedder.base_model is None or not labels_output:
            return {
                "status": "error",
                "message": "base_model_unavailable",
                "detail": "no ImageNet weights are installed (TRAINYARD_WEIGHTS_DIR); custom tags use the"
                f" {embedder.model.manifest.get('embedder')} fallback embedder",
            }
        labelled = embedder.model.model_copy(
            update={"manifest": {**embedder.model.manifest, "output": {"name": labels_output}}}
        )
        probabilities = self._predictor.probabilities(labelled, data)
        top = np.argsort(-probabilities)[:BASE_TOP_LABELS]
        return {
            "status": "ok",
            "model": embedder.base_model,
            "labels": {embedder.model.classes[i]: float(probabilities[i]) for i in top},
        }

    # --- state tars -----------------------------------------------------------------------

    def export_state(self, tenant_id: str, destination: Path) -> None:
        """Every image (with its embedding by the current embedder when there is one), every
        tag's assignments and current weights, as a tar at `destination`."""
        embedder = self.embedder(tenant_id, wait=False)
        state: dict[str, Any] = {
            "schema": STATE_SCHEMA,
            "embedder": embedder.fingerprint if embedder else None,
            "images": {},
            "tags": {},
        }
        with tarfile.open(destination, "w") as archive:

            def add(name: str, payload: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(payload), int(time.time()), 0o644
                archive.addfile(info, io.BytesIO(payload))

            for image in self._store.list_aliases(tenant_id, IMAGES):
                extension = image.target.rsplit(".", 1)[1]
                entry: dict[str, Any] = {"file": f"images/{image.name}.{extension}", "embedding": None}
                add(entry["file"], self._blobs.get_bytes(image.target))
                key = image.data.get("embeddings", {}).get(embedder.fingerprint) if embedder else None
                if key is not None and self._blobs.exists(key):
                    entry["embedding"] = f"embeddings/{image.name}.npy"
                    add(entry["embedding"], self._blobs.get_bytes(key))
                state["images"][image.name] = entry
            for tag in self._store.list_aliases(tenant_id, TAGS):
                examples = self._store.list_aliases(tenant_id, examples_namespace(tag.name))
                weights = self.current_weights(tenant_id, tag)
                source_key = None
                if weights is not None and weights.source != "state":
                    job = self._jobs.get(tenant_id, weights.source)
                    source_key = model_prefix(tenant_id, job.model_id) + TAG_MODEL_FILE
                elif weights is not None:
                    source_key = tag.data["imported"]["key"]
                state["tags"][tag.name] = {
                    "positive": [e.name for e in examples if e.target == "positive"],
                    "negative": [e.name for e in examples if e.target == "negative"],
                    "model": f"tags/{tag.name}.json" if source_key else None,
                }
                if source_key:
                    add(f"tags/{tag.name}.json", self._blobs.get_bytes(source_key))
            add("state.json", json.dumps(state, indent=1).encode())

    def import_state(self, tenant_id: str, tar_path: Path) -> dict[str, Any]:
        """Replace the tenant's images and tags with a state tar's. Everything is read and
        checked first (member types and names, sizes, images, embeddings, weights); a bad tar
        changes nothing."""
        state = read_state_tar(tar_path, self._max_state_bytes, self._max_pixels)
        embedder = self.embedder(tenant_id)
        assert embedder is not None
        same_embedder = state.embedder == embedder.fingerprint
        for tag in self.list_tags(tenant_id):
            self.delete_tag(tenant_id, tag)
        for image in self._store.list_aliases(tenant_id, IMAGES):
            self._blobs.delete_prefix(images_prefix(tenant_id, image.name))
            self._store.delete_alias(tenant_id, IMAGES, image.name)
        for image_id, (checked, embedding) in state.images.items():
            prefix = images_prefix(tenant_id, image_id)
            self._blobs.put_bytes(f"{prefix}image.{checked.extension}", checked.data)
            embeddings = {}
            if embedding is not None and same_embedder:
                key = f"{prefix}embedding-{embedder.fingerprint}.npy"
                self._blobs.put_bytes(key, embedding)
                embeddings[embedder.fingerprint] = key
            self._store.put_alias(
                Alias(
                    tenant_id=tenant_id,
                    namespace=IMAGES,
                    name=image_id,
                    target=f"{prefix}image.{checked.extension}",
                    data={"width": checked.width, "height": checked.height, "embeddings": embeddings},
                )
            )
        needs_training = []
        for tag, (positives, negatives, weights) in state.tags.items():
            data: dict[str, Any] = {}
            if weights is not None and same_embedder:
                key = f"tenants/{tenant_id}/seed003/tags/{tag}/imported-{uuid.uuid4().hex}.json"
                self._blobs.put_bytes(key, weights)
                data["imported"] = {"key": key, "at": utcnow().isoformat()}
            elif positives and negatives:
                needs_training.append(tag)
            self._store.put_alias(Alias(tenant_id=tenant_id, namespace=TAGS, name=tag, target=tag, data=data))
            for image_id in positives + negatives:
                self._store.put_alias(
                    Alias(
                        tenant_id=tenant_id,
                        namespace=examples_namespace(tag),
                        name=image_id,
                        target="positive" if image_id in positives else "negative",
                    )
                )
        return {"images": len(state.images), "tags": sorted(state.tags), "needs_training": needs_training}


# --- reading state tars safely -----------------------------------------------------------


@dataclass(frozen=True)
class State:
    embedder: str | None
    images: dict[str, tuple[CheckedImage, bytes | None]]  # image id → image, embedding (.npy)
    tags: dict[str, tuple[list[str], list[str], bytes | None]]  # tag → positives, negatives, weights


def _state_error(message: str) -> TrainyardError:
    return seed_error(InvalidInput, "state_error", f"state tar: {message}")


def read_state_tar(path: Path, max_bytes: int, max_pixels: int) -> State:
    """Read a state tar without extracting it to disk: only regular files and directories
    (links, devices and FIFOs are refused), only the names the layout allows (so no absolute
    paths or `..`), at most `max_bytes` in all; then check every part."""
    import numpy as np

    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            total = 0
            for count, member in enumerate(archive, start=1):
                if count > STATE_MAX_MEMBERS:
                    raise _state_error(f"more than {STATE_MAX_MEMBERS} members")
                if member.issym() or member.islnk():
                    raise _state_error(f"{member.name!r} is a link; links are not accepted")
                if member.isdir():
                    if member.name.rstrip("/") not in ("images", "embeddings", "tags"):
                        raise _state_error(f"unexpected directory {member.name!r}")
                    continue
                if not member.isfile():
                    raise _state_error(f"{member.name!r} is not a regular file (device or FIFO)")
                if not _allowed_member_name(member.name):
                    raise _state_error(
                        f"unexpected member {member.name!r}; a state tar holds state.json, images/,"
                        " embeddings/ and tags/"
                    )
                total += member.size
                if total > max_bytes:
                    raise seed_error(
                        PayloadTooLarge, "file_too_large", f"state tar: over {max_bytes} bytes uncompressed"
                    )
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - regular files always have data
                    raise _state_error(f"{member.name!r} is unreadable")
                members[member.name] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _state_error(f"not a readable tar ({exc})") from exc
    try:
        document = json.loads(members.pop("state.json"))
    except KeyError:
        raise _state_error("state.json is missing") from None
    except ValueError as exc:
        raise _state_error(f"state.json is not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("schema") != STATE_SCHEMA:
        raise _state_error(f"state.json must be a {STATE_SCHEMA} document")
    raw_images, raw_tags = document.get("images"), document.get("tags")
    if not isinstance(raw_images, dict) or not isinstance(raw_tags, dict):
        raise _state_error("state.json needs objects 'images' and 'tags'")
    images: dict[str, tuple[CheckedImage, bytes | None]] = {}
    dimension = None
    for image_id, entry in raw_images.items():
        checked_name(image_id, "state tar: image id", "state_error")
        file_name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file_name, str) or file_name not in members:
            raise _state_error(f"image {image_id!r}: its file {file_name!r} is not in the tar")
        try:
            checked = check_image(members[file_name], file_name, max_pixels)
        except InvalidInput as exc:
            raise _state_error(exc.message) from exc
        embedding = None
        if entry.get("embedding") is not None:
            name = entry["embedding"]
            if name not in members:
                raise _state_error(f"image {image_id!r}: its embedding {name!r} is not in the tar")
            try:
                vector = np.load(io.BytesIO(members[name]), allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise _state_error(f"{name} is not a .npy array ({exc})") from exc
            if (
                vector.ndim != 1
                or not np.issubdtype(vector.dtype, np.floating)
                or not np.isfinite(vector).all()
            ):
                raise _state_error(f"{name} must be a vector of finite floats")
            if dimension is not None and vector.shape[0] != dimension:
                raise _state_error(f"{name} has {vector.shape[0]} values; the others {dimension}")
            dimension = vector.shape[0]
            embedding = members[name]
        images[image_id] = (checked, embedding)
    tags: dict[str, tuple[list[str], list[str], bytes | None]] = {}
    for tag, entry in raw_tags.items():
        checked_name(tag, "state tar: tag", "state_error")
        if not isinstance(entry, dict):
            raise _state_error(f"tag {tag!r} must be an object")
        positives, negatives = entry.get("positive", []), entry.get("negative", [])
        for listed in (positives, negatives):
            if not isinstance(listed, list) or any(i not in images for i in listed):
                raise _state_error(f"tag {tag!r}: every positive/negative must be an image id in the tar")
        if set(positives) & set(negatives):
            raise _state_error(f"tag {tag!r}: an image is both positive and negative")
        weights = None
        if entry.get("model") is not None:
            name = entry["model"]
            if name not in members:
                raise _state_error(f"tag {tag!r}: its model {name!r} is not in the tar")
            try:
                parsed = parse_tag_weights(json.loads(members[name]), "state", name)
            except ValueError as exc:
                raise _state_error(f"{name} is not JSON ({exc})") from exc
            if parsed.embedder != document.get("embedder"):
                raise _state_error(f"{name} was fitted on another embedder than the tar's")
            weights = members[name]
        tags[tag] = (list(positives), list(negatives), weights)
    embedder = document.get("embedder")
    return State(str(embedder) if embedder else None, images, tags)


_MEMBER = re.compile(
    r"^(state\.json|images/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}|embeddings/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.npy|tags/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.json)$"
)


def _allowed_member_name(name: str) -> bool:
    return bool(_MEMBER.match(name)) and ".." not in name
