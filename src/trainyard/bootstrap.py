"""The composition root: the one place that chooses adapters from settings and wires the
services and the event subscriptions. Nothing is built at import time."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from .adapters.local.disk_blobs import DiskBlobStore
from .adapters.local.event_bus import InProcessEventBus
from .adapters.local.import_thread import DaemonThreadImports
from .adapters.local.pose_probe import SubprocessPoseProbe
from .adapters.local.secrets_file import FileSecretStore
from .adapters.local.sqlite_store import SqliteJobStore
from .adapters.local.subprocess_launcher import (
    PROGRESS,
    WORKER_EXIT,
    ContainerCommand,
    SubprocessLauncher,
)
from .ports import BlobStore, EventBus, ImportRunner, JobLauncher, JobStore, PoseProbe, SecretStore
from .services.archives import ArchiveLimits
from .services.datasets import DatasetService
from .services.external_datasets import ExternalTrainingService, FetchLimits
from .services.job_events import JobEventsService
from .services.jobs import STATUS_CHANGED, JobService
from .services.models import ModelService
from .services.platform_events import PlatformEventsService
from .services.prediction import Predictor
from .services.reaper import ReaperService
from .services.tags import TagService
from .services.tenants import TenantService
from .services.uploads import ApiUploadTransport, PresignedPostTransport, UploadService, UploadTransport
from .services.webhooks import WebhookService
from .settings import Settings


@dataclass
class Services:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    bus: EventBus
    launcher: JobLauncher
    tenants: TenantService
    datasets: DatasetService
    jobs: JobService
    job_events: JobEventsService
    platform_events: PlatformEventsService
    reaper: ReaperService
    models: ModelService
    webhooks: WebhookService
    uploads: UploadService
    external_training: ExternalTrainingService  # seed 002: datasets pulled from S3 or Azure
    tags: TagService  # seed 003's custom tags
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start_background_work(self) -> None:
        """What a long-running local stack does besides answering requests: settle jobs left
        over from a previous run, follow running workers, deliver webhooks."""
        self.jobs.settle_unlaunched()
        if isinstance(self.launcher, SubprocessLauncher):  # only local workers can be re-attached
            self.launcher.reattach(self.store.list_unfinished_jobs())
        for target, name in ((self.webhooks.run_worker, "webhooks"), (self._run_reaper, "reaper")):
            worker = threading.Thread(target=target, name=name, daemon=True)
            worker.start()
            self._threads.append(worker)

    def _run_reaper(self) -> None:
        while not self._stopping.wait(self.settings.reaper_interval_seconds):
            try:
                self.reaper.run()
            except Exception:
                logging.getLogger(__name__).exception("reaper pass failed")

    def stop_background_work(self) -> None:
        self._stopping.set()
        self.webhooks.stop()
        for thread in self._threads:
            thread.join(timeout=5)


@dataclass(frozen=True)
class Adapters:
    store: JobStore
    blobs: BlobStore
    bus: EventBus
    launcher: JobLauncher
    secrets: SecretStore
    upload_transport: UploadTransport  # how clients send uploads too large for one request
    # checks pose uploads with sleap-io outside the API process; None: no pose on this backend
    pose_probe: PoseProbe | None = None
    # runs seed 002's dataset imports after the answer; None: this deployment cannot
    import_runner: ImportRunner | None = None


def bootstrap(settings: Settings) -> Services:
    settings = settings.model_copy(update={"home": settings.home.resolve()})
    adapters = _aws_adapters(settings) if settings.backend == "aws" else _local_adapters(settings)
    return _wire(settings, adapters)


def _local_adapters(settings: Settings) -> Adapters:
    blobs = DiskBlobStore(settings.blob_root)
    bus = InProcessEventBus()
    pose = ContainerCommand(settings.resolved_pose_python, settings.pose_dir, "pose", (settings.jobkit_dir,))
    launcher = SubprocessLauncher(
        settings.jobs_root,
        blobs,
        bus,
        {
            "trainer": ContainerCommand(
                settings.resolved_trainer_python, settings.trainer_dir, "trainer", (settings.jobkit_dir,)
            ),
            "pose": pose,
        },
        weights_dir=settings.weights_dir,
        cancel_grace_seconds=settings.cancel_grace_seconds,
    )
    return Adapters(
        store=SqliteJobStore(settings.database_path),
        blobs=blobs,
        bus=bus,
        launcher=launcher,
        secrets=FileSecretStore(settings.home / "secrets.json"),
        upload_transport=ApiUploadTransport(),
        pose_probe=SubprocessPoseProbe(pose),
        import_runner=DaemonThreadImports(),
    )


def _aws_adapters(settings: Settings) -> Adapters:
    # Imported here: the local stack never loads the AWS adapters (nor boto3 through them).
    from .adapters.aws.batch_launcher import BatchLauncher
    from .adapters.aws.dynamodb_store import DynamoDbJobStore
    from .adapters.aws.eventbridge import EventBridgeBus
    from .adapters.aws.lambda_imports import LambdaImports
    from .adapters.aws.pose_probe import LambdaPoseProbe
    from .adapters.aws.s3_blobs import S3BlobStore
    from .adapters.aws.sagemaker_launcher import SageMakerLauncher
    from .adapters.aws.secrets_manager import SecretsManagerStore
    from .adapters.routed_blobs import RoutedBlobStore

    region = settings.aws_region
    cache = settings.home / "blob-cache"
    artifacts = S3BlobStore(settings.artifacts_bucket, cache_dir=cache / "artifacts", region_name=region)
    datasets_bucket = S3BlobStore(settings.datasets_bucket, cache_dir=cache / "datasets", region_name=region)
    blobs = RoutedBlobStore(datasets_bucket, artifacts)
    store = DynamoDbJobStore(settings.table_name)
    secrets = SecretsManagerStore(settings.secrets_prefix, region_name=region)
    launcher: JobLauncher
    if settings.launcher == "batch":
        launcher = BatchLauncher(
            job_queue=settings.batch_job_queue,
            job_definitions={
                "trainer": settings.batch_job_definition,
                "pose": settings.batch_pose_job_definition,
            },
            artifacts_bucket=settings.artifacts_bucket,
            datasets_bucket=settings.datasets_bucket,
            event_bus_name=settings.event_bus_name,
            max_runtime_seconds=settings.max_runtime_seconds,
            blobs=artifacts,
            intent_recorder=store.set_launch_ref,
        )
    else:
        launcher = SageMakerLauncher(
            artifacts,
            image_uris={"trainer": settings.trainer_image_uri, "pose": settings.pose_image_uri},
            role_arn=settings.sagemaker_role_arn,
            instance_type=settings.instance_type,
            use_spot=settings.use_spot,
            max_runtime_seconds=settings.max_runtime_seconds,
            max_wait_seconds=settings.max_wait_seconds,
            artifacts_bucket=settings.artifacts_bucket,
            datasets_bucket=settings.datasets_bucket,
            event_bus_name=settings.event_bus_name,
        )
    return Adapters(
        store=store,
        blobs=blobs,
        bus=EventBridgeBus(settings.event_bus_name, region_name=region),
        launcher=launcher,
        secrets=secrets,
        upload_transport=PresignedPostTransport(datasets_bucket),
        pose_probe=(
            LambdaPoseProbe(settings.pose_probe_function, settings.datasets_bucket, datasets_bucket)
            if settings.pose_probe_function
            else None
        ),
        import_runner=(
            LambdaImports(settings.dataset_import_function, secrets, region_name=region)
            if settings.dataset_import_function
            else None
        ),
    )


def _wire(settings: Settings, adapters: Adapters) -> Services:
    store, blobs, bus, launcher = adapters.store, adapters.blobs, adapters.bus, adapters.launcher
    jobs = JobService(
        store,
        launcher,
        bus,
        blobs,
        adapters.pose_probe,
        settings.max_video_frames,
        allow_loopback_urls=settings.allows_loopback_urls,
        max_video_seconds=settings.max_video_seconds,
    )
    job_events = JobEventsService(store, blobs, jobs)
    platform_events = PlatformEventsService(store, launcher, job_events)
    predictor = Predictor(blobs, settings.predict_cache_size, settings.max_image_pixels)
    webhooks = WebhookService(
        store,
        adapters.secrets,
        retry_delays=settings.webhook_retry_delays,
        timeout_seconds=settings.webhook_timeout_seconds,
        secret_grace_seconds=settings.webhook_secret_grace_seconds,
        allow_loopback_urls=settings.allows_loopback_urls,
    )
    # In process these are the bus's routes; on AWS, EventBridge rules in template.yaml route
    # the same detail-types to the job_events and webhooks functions.
    bus.subscribe(PROGRESS, job_events.handle_progress)
    bus.subscribe(WORKER_EXIT, job_events.handle_worker_exit)
    bus.subscribe(STATUS_CHANGED, webhooks.on_job_status_changed)
    datasets = DatasetService(
        store,
        blobs,
        settings.tmp_root,
        ArchiveLimits(settings.max_archive_files, settings.max_archive_uncompressed_bytes),
        settings.max_image_pixels,
        settings.min_images_per_class,
        adapters.pose_probe,
        settings.min_pose_frames,
        max_video_frames=settings.max_video_frames,
        max_video_seconds=settings.max_video_seconds,
        presign_seconds=settings.presign_seconds,
    )
    uploads = UploadService(
        blobs,
        adapters.upload_transport,
        datasets,
        max_upload_bytes=settings.max_upload_bytes,
        expires_seconds=settings.presign_seconds,
    )
    return Services(
        settings=settings,
        store=store,
        blobs=blobs,
        bus=bus,
        launcher=launcher,
        tenants=TenantService(store),
        datasets=datasets,
        jobs=jobs,
        job_events=job_events,
        platform_events=platform_events,
        reaper=ReaperService(store, launcher, platform_events, settings.reaper_stale_seconds),
        models=ModelService(store, blobs, predictor, settings.presign_seconds),
        webhooks=webhooks,
        uploads=uploads,
        external_training=ExternalTrainingService(
            jobs,
            datasets,
            settings.tmp_root,
            FetchLimits(
                settings.max_archive_files, settings.max_archive_uncompressed_bytes, settings.max_upload_bytes
            ),
            # a download outlives the request: a thread of the local service; on AWS its
            # own function (the API function stops when it has answered)
            adapters.import_runner,
            settings.external_s3_endpoint,
            settings.aws_region,
            allow_loopback_urls=settings.allows_loopback_urls,
        ),
        tags=TagService(
            store,
            blobs,
            jobs,
            predictor,
            tmp_root=settings.tmp_root,
            max_image_pixels=settings.max_image_pixels,
            embedder_wait_seconds=settings.tags_embedder_wait_seconds,
            max_state_bytes=settings.tags_max_state_bytes,
        ),
    )
