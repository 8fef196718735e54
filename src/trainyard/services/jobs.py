"""Jobs: create (validate, record, launch), cancel, read. Every status change goes through
`JobService.transition`, a conditional write that publishes "Job Status Changed" only when
it applied.

Four kinds of job share one path (`create_job`): training a classifier or an object detector
(the trainer container), training a SLEAP pose model and running one on a video (the pose
container).
Each kind has a request model and a plan: the job and model records and the LaunchSpec.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from ..domain import (
    Dataset,
    EpochMetrics,
    Job,
    JobStatus,
    JobType,
    Model,
    ModelStatus,
    Task,
    new_id,
)
from ..errors import Conflict, InvalidInput, NotFound, Unavailable
from ..params import (
    ClassifierParams,
    DetectionParams,
    PoseInferParams,
    PoseParams,
    encode_hyperparameters,
    normalise_exports,
    to_hyperparameters,
)
from ..ports import BlobStore, ChannelFile, EventBus, JobLauncher, JobStore, LaunchSpec, Page, PoseProbe
from . import outbound
from .datasets import check_video_duration, dataset_files_prefix
from .detection_datasets import ANNOTATIONS_FILE

log = logging.getLogger(__name__)

STATUS_CHANGED = "Job Status Changed"
MODEL_MANIFEST_FILE = "trainyard_model.json"  # what a training container writes beside its exports


WEBHOOK_URL = r"^https?://[^\s]+$"


class TrainJobRequest(BaseModel):
    """Train an image classifier."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["train"]
    task: Literal["classification"] = "classification"
    dataset_id: str = Field(min_length=1, max_length=100)
    model_name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    params: ClassifierParams = Field(default_factory=ClassifierParams)
    exports: list[str] | None = Field(None, max_length=10)
    webhook_url: str | None = Field(None, max_length=2000, pattern=WEBHOOK_URL)
    initial_model_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="fine-tune from this ready classifier's weights (same backbone and image_size;"
        " new classes get new outputs)",
    )


class DetectionTrainJobRequest(BaseModel):
    """Train an object detector (RetinaNet) on a detection dataset."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["train"]
    task: Literal["detection"]
    dataset_id: str = Field(min_length=1, max_length=100)
    model_name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    params: DetectionParams = Field(default_factory=DetectionParams)
    exports: list[str] | None = Field(None, max_length=10)
    webhook_url: str | None = Field(None, max_length=2000, pattern=WEBHOOK_URL)


class PoseTrainJobRequest(BaseModel):
    """Train a SLEAP pose model on a pose dataset."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["train"]
    task: Literal["pose"]
    dataset_id: str = Field(min_length=1, max_length=100)
    model_name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    params: PoseParams = Field(default_factory=PoseParams)
    webhook_url: str | None = Field(None, max_length=2000, pattern=WEBHOOK_URL)


class UploadReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(min_length=1, max_length=100, description="from POST /v1/uploads")


class PoseInferJobRequest(BaseModel):
    """Run a trained pose model on a video: JSON with `video: {upload_id}`, or multipart with
    the video as file field `video`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["infer"]
    task: Literal["pose"] = "pose"
    model_id: str = Field(min_length=1, max_length=100)
    video: UploadReference | None = None
    params: PoseInferParams = Field(default_factory=PoseInferParams)
    webhook_url: str | None = Field(None, max_length=2000, pattern=WEBHOOK_URL)


def _job_kind(value: Any) -> str:
    """The tag of a job request: `<type>:<task>`, task defaulting as each request does."""
    if isinstance(value, dict):
        kind, task = value.get("type"), value.get("task")
    else:
        kind, task = getattr(value, "type", None), getattr(value, "task", None)
    return f"{kind}:{task or ('classification' if kind == 'train' else 'pose')}"


JobRequest = Annotated[
    Annotated[TrainJobRequest, Tag("train:classification")]
    | Annotated[DetectionTrainJobRequest, Tag("train:detection")]
    | Annotated[PoseTrainJobRequest, Tag("train:pose")]
    | Annotated[PoseInferJobRequest, Tag("infer:pose")],
    Discriminator(
        _job_kind,
        custom_error_type="job_kind",
        custom_error_message=(
            "type and task must be train/classification, train/detection, train/pose or infer/pose"
        ),
    ),
]
AnyJobRequest = TrainJobRequest | DetectionTrainJobRequest | PoseTrainJobRequest | PoseInferJobRequest
TrainingRequest = TrainJobRequest | DetectionTrainJobRequest | PoseTrainJobRequest


@dataclass(frozen=True)
class VideoInput:
    """A video a request carries (multipart) or names (an upload), as a local file."""

    path: Path
    filename: str  # its base name as uploaded: the job's input file is called this

    @classmethod
    def uploaded(cls, path: Path, filename: str | None) -> VideoInput:
        name = Path((filename or "").replace("\\", "/")).name
        if not name or name.startswith(".") or len(name) > 200 or not name.isprintable():
            raise InvalidInput(f"video: the file name {filename!r} is not usable; name it like walk.mp4")
        return cls(path, name)


@dataclass(frozen=True)
class JobPlan:
    """What creating one job writes and launches."""

    job: Job
    model: Model | None  # the model a training job produces; None for inference
    spec: LaunchSpec
    store_inputs: Callable[[], None] | None = None  # inputs to copy before the launch


def idempotent_ids(tenant_id: str, idempotency_key: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{tenant_id}\n{idempotency_key}".encode()).hexdigest()
    return f"job_{digest[:16]}", f"mdl_{digest[16:32]}"


def model_prefix(tenant_id: str, model_id: str) -> str:
    return f"tenants/{tenant_id}/models/{model_id}/"


def results_prefix(tenant_id: str, job_id: str) -> str:
    """Where an inference job's outputs are persisted (its container's model dir)."""
    return f"tenants/{tenant_id}/jobs/{job_id}/results/"


def output_prefix(job: Job) -> str:
    """Where a job's container output (its model dir) is persisted: the model it trains, or
    an inference job's results."""
    if job.type is JobType.INFER:
        return results_prefix(job.tenant_id, job.id)
    return model_prefix(job.tenant_id, job.model_id)


def job_input_prefix(tenant_id: str, job_id: str) -> str:
    return f"tenants/{tenant_id}/jobs/{job_id}/input/"


class JobService:
    def __init__(
        self,
        store: JobStore,
        launcher: JobLauncher,
        bus: EventBus,
        blobs: BlobStore | None = None,
        pose_probe: PoseProbe | None = None,
        max_video_frames: int = 100_000,
        *,
        allow_loopback_urls: bool = False,
        max_video_seconds: float = 3600.0,
    ) -> None:
        self._store = store
        self._allow_loopback_urls = allow_loopback_urls
        self._launcher = launcher
        self._bus = bus
        self._blobs = blobs
        self._pose_probe = pose_probe
        self._max_video_frames = max_video_frames
        self._max_video_seconds = max_video_seconds

    def create_job(
        self,
        tenant_id: str,
        request: AnyJobRequest,
        idempotency_key: str | None = None,
        video: VideoInput | None = None,
    ) -> Job:
        """Record and launch a job. With an idempotency key the ids derive from (tenant, key):
        a retried request finds the job the first one recorded, and the launch, whose platform
        name derives from the job id, cannot start a second run."""
        self._check_webhook_url(request.webhook_url)
        fingerprint = None  # what a replay is compared with; only a keyed request can be replayed
        if idempotency_key is not None:
            fingerprint = _fingerprint(request, video)
            job_id, model_id = idempotent_ids(tenant_id, idempotency_key)
            existing = self._store.get_job(tenant_id, job_id)
            if existing is not None:
                return self._replay(existing, fingerprint, request, video)
        else:
            job_id, model_id = new_id("job"), new_id("mdl")
        plan = self._plan(tenant_id, job_id, model_id, fingerprint, request, video)
        try:
            self._store.create_job(plan.job, plan.model)
        except Conflict:  # the same key, concurrently: the other request recorded it first
            raced = self._store.get_job(tenant_id, job_id)
            if raced is None:
                raise
            return self._replay(raced, fingerprint, request, video)
        self._launch(plan)
        return self.get(tenant_id, job_id)

    create_training_job = create_job  # the name the classifier routes have always used

    def _check_webhook_url(self, url: str | None) -> None:
        """SSRF: a webhook must go to a public https URL (services/outbound.py); refused
        before anything is recorded. Delivery checks it again."""
        if url:
            try:
                outbound.check_public_url(url, self._allow_loopback_urls)
            except outbound.UnsafeURL as exc:
                raise outbound.UnsafeURL(f"webhook_url: {exc.message}") from None

    def create_planned(self, plan: JobPlan) -> Job:
        """Record and launch a job another service planned (seed 003's tag and embedder jobs,
        services/tags.py): the same records, launch and events as every job."""
        self._store.create_job(plan.job, plan.model)
        self._launch(plan)
        return self.get(plan.job.tenant_id, plan.job.id)

    def _replay(
        self, existing: Job, fingerprint: str | None, request: AnyJobRequest, video: VideoInput | None
    ) -> Job:
        if existing.request_fingerprint != fingerprint:
            raise InvalidInput("Idempotency-Key was already used with a different request; use a new key")
        if existing.launch_ref is None and existing.status is JobStatus.PENDING:
            # the first request was recorded but never launched
            self._launch(
                self._plan(existing.tenant_id, existing.id, existing.model_id, fingerprint, request, video)
            )
        return self.get(existing.tenant_id, existing.id)

    def _plan(
        self,
        tenant_id: str,
        job_id: str,
        model_id: str,
        fingerprint: str | None,
        request: AnyJobRequest,
        video: VideoInput | None,
    ) -> JobPlan:
        if isinstance(request, TrainJobRequest):
            return self._plan_classifier(tenant_id, job_id, model_id, fingerprint, request)
        if isinstance(request, DetectionTrainJobRequest):
            return self._plan_detection(tenant_id, job_id, model_id, fingerprint, request)
        if isinstance(request, PoseTrainJobRequest):
            return self._plan_pose_training(tenant_id, job_id, model_id, fingerprint, request)
        return self._plan_pose_inference(tenant_id, job_id, fingerprint, request, video)

    # --- the plans ----------------------------------------------------------------------------

    def _dataset(self, tenant_id: str, dataset_id: str, task: Task) -> Dataset:
        dataset = self._store.get_dataset(tenant_id, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found")
        if dataset.task is not task:
            raise InvalidInput(
                f"dataset {dataset_id} is a {dataset.task.value} dataset; a {task.value} job needs"
                f" a {task.value} dataset"
            )
        return dataset

    def _training_records(
        self,
        tenant_id: str,
        job_id: str,
        model_id: str,
        fingerprint: str | None,
        request: TrainingRequest,
        params: dict[str, Any],
    ) -> tuple[Job, Model]:
        job = Job(
            id=job_id,
            tenant_id=tenant_id,
            type=JobType.TRAIN,
            task=Task(request.task),
            dataset_id=request.dataset_id,
            model_id=model_id,
            params=params,
            webhook_url=request.webhook_url,
            epochs=request.params.epochs,
            request_fingerprint=fingerprint,
        )
        model = Model(
            id=model_id,
            tenant_id=tenant_id,
            name=request.model_name,
            description=request.description,
            task=job.task,
            job_id=job_id,
            dataset_id=request.dataset_id,
            params=params,
        )
        return job, model

    def _plan_classifier(
        self, tenant_id: str, job_id: str, model_id: str, fingerprint: str | None, request: TrainJobRequest
    ) -> JobPlan:
        self._dataset(tenant_id, request.dataset_id, Task.CLASSIFICATION)
        exports = _exports(request)
        images = self._store.list_images(tenant_id, request.dataset_id)
        trainable_classes = {i.label for i in images if i.split != "val"}
        if len(trainable_classes) < 2:
            raise InvalidInput(
                f"dataset {request.dataset_id} has {len(trainable_classes)} class(es) with training"
                " images; a classifier needs at least 2"
            )
        params = {**request.params.model_dump(), "exports": exports}
        hyperparameters = to_hyperparameters(job_id, Task.CLASSIFICATION.value, request.params, exports)
        # each image's place in the channel: images/<its blob's file name>
        files = [ChannelFile(i.blob_key, f"images/{i.blob_key.rsplit('/', 1)[1]}") for i in images]
        channels = {"training": files}
        if request.initial_model_id is not None:
            channels["initial_model"] = self._initial_model_files(tenant_id, request)
            params["initial_model_id"] = request.initial_model_id  # the model's lineage
            hyperparameters["initial_model"] = json.dumps(True)
        job, model = self._training_records(tenant_id, job_id, model_id, fingerprint, request, params)
        manifest = "".join(
            json.dumps({"path": f.relative_path, "label": i.label, "split": i.split}) + "\n"
            for f, i in zip(files, images, strict=True)
        )
        spec = LaunchSpec(
            job_id=job_id,
            container="trainer",
            hyperparameters=hyperparameters,
            channels=channels,
            channel_documents={"training": {"manifest.jsonl": manifest}},
            model_prefix=model_prefix(tenant_id, model_id),
        )
        return JobPlan(job, model, spec)

    def _initial_model_files(self, tenant_id: str, request: TrainJobRequest) -> list[ChannelFile]:
        """The earlier classifier a job fine-tunes (the trainer's `initial_model` channel): it
        must be ready, kept as Keras, and of the same architecture, or its weights cannot fit."""
        initial_id = str(request.initial_model_id)
        initial = self._store.get_model(tenant_id, initial_id)
        if initial is None:
            raise NotFound(f"initial_model_id: model {initial_id} not found")
        if initial.task is not Task.CLASSIFICATION:
            raise InvalidInput(f"initial_model_id: model {initial_id} is a {initial.task.value} model")
        if initial.status is not ModelStatus.READY:
            raise Conflict(f"initial_model_id: model {initial_id} is {initial.status.value}, not ready")
        keras_file = initial.manifest.get("exports", {}).get("keras")
        if keras_file is None:
            raise InvalidInput(f"initial_model_id: model {initial_id} has no keras export to start from")
        for name in ("backbone", "alpha", "image_size"):
            earlier, wanted = initial.params.get(name), getattr(request.params, name)
            if earlier != wanted:
                raise InvalidInput(
                    f"params.{name}: {wanted!r} differs from model {initial_id}'s {earlier!r};"
                    " fine-tuning keeps the earlier model's architecture"
                )
        prefix = model_prefix(tenant_id, initial_id)
        return [
            ChannelFile(prefix + keras_file, "model.keras"),
            ChannelFile(prefix + MODEL_MANIFEST_FILE, MODEL_MANIFEST_FILE),
        ]

    def _plan_detection(
        self,
        tenant_id: str,
        job_id: str,
        model_id: str,
        fingerprint: str | None,
        request: DetectionTrainJobRequest,
    ) -> JobPlan:
        dataset = self._dataset(tenant_id, request.dataset_id, Task.DETECTION)
        exports = _exports(request)
        if self._blobs is None:
            raise Unavailable("detection training is not available on this deployment")
        prefix = dataset_files_prefix(tenant_id, dataset.id)
        # The container reads the annotations as stored; the image files it names go in the
        # channel beside it.
        document = self._blobs.get_bytes(prefix + dataset.details["annotations"])
        images = json.loads(document)["images"]
        files = [ChannelFile(prefix + image["file"], image["file"]) for image in images]
        params = {**request.params.model_dump(), "exports": exports}
        job, model = self._training_records(tenant_id, job_id, model_id, fingerprint, request, params)
        spec = LaunchSpec(
            job_id=job_id,
            container="trainer",
            hyperparameters=to_hyperparameters(job_id, Task.DETECTION.value, request.params, exports),
            channels={"training": files},
            channel_documents={"training": {ANNOTATIONS_FILE: document.decode()}},
            model_prefix=model_prefix(tenant_id, model_id),
        )
        return JobPlan(job, model, spec)

    def _plan_pose_training(
        self,
        tenant_id: str,
        job_id: str,
        model_id: str,
        fingerprint: str | None,
        request: PoseTrainJobRequest,
    ) -> JobPlan:
        dataset = self._dataset(tenant_id, request.dataset_id, Task.POSE)
        nodes = dataset.classes
        if request.params.anchor_part is not None and request.params.anchor_part not in nodes:
            raise InvalidInput(
                f"params.anchor_part: {request.params.anchor_part!r} is not a node of the dataset's"
                f" skeleton ({', '.join(nodes)})"
            )
        params = request.params.model_dump()
        job, model = self._training_records(tenant_id, job_id, model_id, fingerprint, request, params)
        prefix = dataset_files_prefix(tenant_id, dataset.id)
        relative_paths = [dataset.details["labels"], *dataset.details["video_files"]]
        document = {"labels": dataset.details["labels"], "videos": dataset.details["video_files"]}
        spec = LaunchSpec(
            job_id=job_id,
            container="pose",
            hyperparameters=encode_hyperparameters(
                {"job_id": job_id, "task": "pose", "mode": "train", **params}
            ),
            channels={"training": [ChannelFile(prefix + path, path) for path in relative_paths]},
            channel_documents={"training": {"dataset.json": json.dumps(document)}},
            model_prefix=model_prefix(tenant_id, model_id),
        )
        return JobPlan(job, model, spec)

    def _plan_pose_inference(
        self,
        tenant_id: str,
        job_id: str,
        fingerprint: str | None,
        request: PoseInferJobRequest,
        video: VideoInput | None,
    ) -> JobPlan:
        if self._blobs is None or self._pose_probe is None:
            raise Unavailable("video inference is not available on this deployment")
        model = self._store.get_model(tenant_id, request.model_id)
        if model is None:
            raise NotFound(f"model {request.model_id} not found")
        if model.task is not Task.POSE:
            raise InvalidInput(
                f"model {model.id} is a {model.task.value} model; video inference needs a pose model"
            )
        if model.status is not ModelStatus.READY:
            raise Conflict(f"model {model.id} is {model.status.value}; only a ready model can run")
        expected = request.params.nodes
        if expected is not None and expected != model.classes:
            missing = [n for n in model.classes if n not in expected]
            unknown = [n for n in expected if n not in model.classes]
            raise InvalidInput(
                f"params.nodes do not match model {model.id}'s skeleton ({', '.join(model.classes)}):"
                + (f" missing {', '.join(missing)};" if missing else "")
                + (f" unknown {', '.join(unknown)};" if unknown else "")
                + ("" if missing or unknown else " same nodes in another order;")
                + " the model predicts the nodes it was trained on"
            )
        if video is None:
            raise InvalidInput(
                "video: send the video as multipart file field 'video', or JSON video: {upload_id}"
            )
        probed = self._pose_probe.probe_video(video.path, video.filename)["video"]
        frames = int(probed["frames"])
        if frames > self._max_video_frames:
            raise InvalidInput(
                f"video {video.filename} has {frames} frames; at most {self._max_video_frames}"
            )
        check_video_duration(video.filename, frames, probed.get("fps"), self._max_video_seconds)
        if request.params.frame_start >= frames:
            raise InvalidInput(
                f"params.frame_start ({request.params.frame_start}) is beyond the video's {frames} frames"
            )
        job = Job(
            id=job_id,
            tenant_id=tenant_id,
            type=JobType.INFER,
            task=Task.POSE,
            dataset_id=None,
            model_id=model.id,
            params={**request.params.model_dump(), "video": video.filename, "video_frames": frames},
            webhook_url=request.webhook_url,
            epochs=0,
            request_fingerprint=fingerprint,
        )
        video_key = f"{job_input_prefix(tenant_id, job_id)}video/{video.filename}"
        blobs = self._blobs
        source_prefix = model_prefix(tenant_id, model.id)
        model_files = blobs.list_keys(source_prefix)
        spec = LaunchSpec(
            job_id=job_id,
            container="pose",
            hyperparameters=encode_hyperparameters(
                {"job_id": job_id, "task": "pose", "mode": "infer", **request.params.model_dump()}
            ),
            channels={
                "model": [ChannelFile(key, key[len(source_prefix) :]) for key in model_files],
                "video": [ChannelFile(video_key, video.filename)],
            },
            model_prefix=results_prefix(tenant_id, job_id),
        )
        return JobPlan(job, None, spec, store_inputs=lambda: blobs.put_file(video_key, video.path))

    # --- jobs whose dataset is fetched after they are recorded (seed 002's external datasets) -

    def record_awaiting_dataset(
        self, tenant_id: str, job_id: str, request: TrainJobRequest | DetectionTrainJobRequest
    ) -> Job:
        """Record a training job (PENDING) and its model before the dataset exists: seed 002
        answers at once and pulls the dataset from S3 or Azure afterwards. The parameters and
        exports are checked here; the dataset id stays unset (request.dataset_id is not read)
        until `launch_with_dataset`. A job left unlaunched by a restart is failed at start-up
        (settle_unlaunched)."""
        self._check_webhook_url(request.webhook_url)
        exports = _exports(request)
        params = {**request.params.model_dump(), "exports": exports}
        job, model = self._training_records(tenant_id, job_id, new_id("mdl"), None, request, params)
        job = job.model_copy(update={"dataset_id": None})
        self._store.create_job(job, model.model_copy(update={"dataset_id": ""}))
        return job

    def launch_with_dataset(
        self, tenant_id: str, job_id: str, request: TrainJobRequest | DetectionTrainJobRequest
    ) -> Job:
        """Launch a job recorded by `record_awaiting_dataset` on the dataset `request.dataset_id`
        now stored; a job cancelled or failed meanwhile is left as it is."""
        job = self.get(tenant_id, job_id)
        if job.status.is_terminal:
            return job
        plan = self._plan(tenant_id, job_id, job.model_id, None, request, None)
        model = self._store.get_model(tenant_id, job.model_id)
        if model is not None:
            self._store.update_model(model.model_copy(update={"dataset_id": request.dataset_id}))
        self._launch(JobPlan(job, None, plan.spec))
        return self.get(tenant_id, job_id)

    def _launch(self, plan: JobPlan) -> None:
        job = plan.job
        try:
            if plan.store_inputs is not None:
                plan.store_inputs()
            self._store.set_launch_ref(job.id, self._launch_asking_again(plan.spec))
        except Exception as exc:
            log.exception("launching job %s failed", job.id)
            self.transition(job.id, JobStatus.FAILED, error=f"could not start the worker: {exc}")

    def _launch_asking_again(self, spec: LaunchSpec) -> str:
        """A launch that raised may still have started the run: the platform accepted the call
        and only its answer was lost (a read timeout). Launchers are idempotent per job id (the
        platform name derives from it), so asking once more finds that run, or starts the one
        that never began, and never starts a second; failing the job instead would leave a run
        the service no longer follows."""
        try:
            return self._launcher.launch(spec)
        except Exception:
            log.warning("launching job %s raised; launching again by its name", spec.job_id, exc_info=True)
            return self._launcher.launch(spec)

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> Job | None:
        job = self._store.transition_job(job_id, target, error=error, result=result)
        if job is None:
            return None
        if target in (JobStatus.FAILED, JobStatus.CANCELLED) and job.type is JobType.TRAIN:
            self._settle_model(job, ModelStatus.FAILED)
        self._bus.publish(STATUS_CHANGED, {"job_id": job.id, "status": job.status.value})
        return job

    def _settle_model(self, job: Job, status: ModelStatus) -> None:
        model = self._store.get_model(job.tenant_id, job.model_id)
        if model is not None and model.status is not status:
            self._store.update_model(model.model_copy(update={"status": status}))

    def cancel(self, tenant_id: str, job_id: str) -> Job:
        job = self.get(tenant_id, job_id)
        if job.status.is_terminal:
            raise Conflict(f"job {job_id} is already {job.status.value}")
        if self.transition(job_id, JobStatus.CANCELLED) is not None:
            self._launcher.stop(job_id, job.launch_ref)
        return self.get(tenant_id, job_id)

    def get(self, tenant_id: str, job_id: str) -> Job:
        job = self._store.get_job(tenant_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def page(self, tenant_id: str, limit: int, cursor: str | None) -> Page:
        return self._store.list_jobs(tenant_id, limit, cursor)

    def metrics(self, tenant_id: str, job_id: str) -> list[EpochMetrics]:
        self.get(tenant_id, job_id)
        return self._store.list_epochs(job_id)

    def settle_unlaunched(self) -> None:
        """At start-up: a job recorded but never launched (the service died in between)."""
        for job in self._store.list_unfinished_jobs():
            if job.launch_ref is None:
                self.transition(
                    job.id, JobStatus.FAILED, error="the service stopped before the job was launched"
                )


def _exports(request: TrainJobRequest | DetectionTrainJobRequest) -> list[str]:
    try:
        return normalise_exports(request.exports)
    except ValueError as exc:
        raise InvalidInput(f"exports: {exc}") from exc


def _fingerprint(request: AnyJobRequest, video: VideoInput | None) -> str:
    digest = hashlib.sha256(request.model_dump_json().encode())
    if video is not None:  # a multipart video is part of the request
        digest.update(video.filename.encode())
        with video.path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest()


def public_job(job: Job) -> dict[str, Any]:
    return job.model_dump(
        mode="json",
        include={
            "id",
            "type",
            "task",
            "status",
            "dataset_id",
            "model_id",
            "current_epoch",
            "epochs",
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "val_map_50",
            "last_epoch_duration_seconds",
            "progress_done",
            "progress_total",
            "progress_unit",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "params",
            "webhook_url",
        },
    )
