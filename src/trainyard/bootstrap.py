"""The composition root: the one place that chooses adapters from settings and wires the
services and the event subscriptions. Nothing is built at import time."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .adapters.local.disk_blobs import DiskBlobStore
from .adapters.local.event_bus import InProcessEventBus
from .adapters.local.secrets_file import FileSecretStore
from .adapters.local.sqlite_store import SqliteJobStore
from .adapters.local.subprocess_launcher import (
    PROGRESS,
    WORKER_EXIT,
    ContainerCommand,
    SubprocessLauncher,
)
from .ports import BlobStore, EventBus, JobStore
from .services.archives import ArchiveLimits
from .services.datasets import DatasetService
from .services.job_events import JobEventsService
from .services.jobs import STATUS_CHANGED, JobService
from .services.models import ModelService
from .services.platform_events import PlatformEventsService
from .services.prediction import Predictor
from .services.reaper import ReaperService
from .services.tenants import TenantService
from .services.webhooks import WebhookService
from .settings import Settings


@dataclass
class Services:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    bus: EventBus
    launcher: SubprocessLauncher
    tenants: TenantService
    datasets: DatasetService
    jobs: JobService
    job_events: JobEventsService
    platform_events: PlatformEventsService
    reaper: ReaperService
    models: ModelService
    webhooks: WebhookService
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start_background_work(self) -> None:
        """What a long-running local stack does besides answering requests: settle jobs left
        over from a previous run, follow running workers, deliver webhooks."""
        self.jobs.settle_unlaunched()
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


def bootstrap(settings: Settings) -> Services:
    if settings.backend != "local":
        raise NotImplementedError("the AWS backend's adapters are built in issue 3")
    home = settings.home.resolve()
    settings = settings.model_copy(update={"home": home})
    store = SqliteJobStore(settings.database_path)
    blobs = DiskBlobStore(settings.blob_root)
    bus = InProcessEventBus()
    launcher = SubprocessLauncher(
        settings.jobs_root,
        blobs,
        bus,
        {"trainer": ContainerCommand(settings.resolved_trainer_python, settings.trainer_dir, "trainer")},
        weights_dir=settings.weights_dir,
        cancel_grace_seconds=settings.cancel_grace_seconds,
    )
    jobs = JobService(store, launcher, bus)
    job_events = JobEventsService(store, blobs, jobs)
    platform_events = PlatformEventsService(store, launcher, job_events)
    predictor = Predictor(blobs, settings.predict_cache_size, settings.max_image_pixels)
    webhooks = WebhookService(
        store,
        FileSecretStore(Path(home) / "secrets.json"),
        max_attempts=settings.webhook_max_attempts,
        backoff_seconds=settings.webhook_backoff_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
    )
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
        models=ModelService(store, blobs, predictor),
        webhooks=webhooks,
    )
