"""Fault tests of event handling: duplicate and out-of-order terminal events through the real
job_events and webhooks Lambda handlers (sample events from events/), concurrent writers racing
one job on DynamoDB (moto) and SQLite, and the reaper's heartbeat timeout. Each ends with the
job in the state the first terminal event set, every epoch kept, and one webhook."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.aws_fixtures import (
    TEST_REGION,
    TEST_TABLE_NAME,
    SerializedClient,
    create_job_table,
    use_fake_credentials,
)
from tests.helpers import (
    MODEL_MANIFEST,
    LambdaContext,
    RecordingLauncher,
    progress,
    record_job,
    webhook_receiver,
)
from trainyard.adapters.aws.dynamodb_store import DynamoDbJobStore
from trainyard.adapters.local.disk_blobs import DiskBlobStore
from trainyard.adapters.local.event_bus import InProcessEventBus
from trainyard.adapters.local.secrets_file import FileSecretStore
from trainyard.adapters.local.sqlite_store import SqliteJobStore
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import DeliveryStatus, Job, JobStatus, ModelStatus, platform_job_name
from trainyard.errors import Conflict
from trainyard.ports import JobStore
from trainyard.services.job_events import JobEventsService
from trainyard.services.jobs import STATUS_CHANGED, JobService
from trainyard.services.webhooks import WebhookService
from trainyard.settings import Settings

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLE_JOB_ID = "job_0123456789abcdef"  # the job the samples name; each test puts its own in
TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
CONTEXT = LambdaContext()


def sample(name: str, job: Job, envelope_id: str | None = None) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    text = text.replace(platform_job_name(SAMPLE_JOB_ID), platform_job_name(job.id)).replace(
        SAMPLE_JOB_ID, job.id
    )
    event: dict[str, Any] = json.loads(text)
    if envelope_id is not None:  # EventBridge redelivers under a new envelope id
        event["id"] = envelope_id
    return event


# --- the Lambda handlers --------------------------------------------------------------------------


@pytest.fixture
def handlers(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    """job_events (with its real idempotency layer on the template's table under moto) and
    webhooks, as template.yaml configures them, on the local backend at the test's home."""
    use_fake_credentials(monkeypatch)
    for name, value in {
        "TRAINYARD_BACKEND": "local", "TRAINYARD_HOME": str(settings.home),
        "TRAINYARD_TABLE_NAME": TEST_TABLE_NAME, "TRAINYARD_WEBHOOK_BACKOFF_SECONDS": "0",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        create_job_table(boto3.client("dynamodb", region_name=TEST_REGION))
        from functions.job_events import handler as job_events
        from functions.webhooks import handler as webhooks

        for module in (job_events, webhooks):  # a cold container: nothing cached from another test
            module.services.forget()
        monkeypatch.setattr(job_events, "_apply_once", None)
        yield job_events, webhooks


def leave_a_finished_model(services: Services, job: Job) -> None:
    """What a successful run leaves for the launcher to persist (the local model dir stands in
    for SageMaker's model.tar.gz)."""
    model_dir = services.launcher.job_dir(job.id) / "model"  # type: ignore[attr-defined]
    model_dir.mkdir(parents=True)
    (model_dir / "trainyard_model.json").write_text(json.dumps(MODEL_MANIFEST))
    (model_dir / "model.onnx").write_bytes(b"onnx bytes")


def test_succeeded_then_failed_then_succeeded_again_first_terminal_wins_one_webhook(
    handlers: tuple[ModuleType, ModuleType], services: Services
) -> None:
    job_events, webhooks = handlers
    published: list[str] = []
    job_events.services().bus.subscribe(STATUS_CHANGED, lambda detail: published.append(detail["status"]))
    with webhook_receiver() as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        job_events.handler(sample("eventbridge_container_progress_status_running.json", job), CONTEXT)
        job_events.handler(sample("eventbridge_container_progress_epoch.json", job), CONTEXT)
        leave_a_finished_model(services, job)

        job_events.handler(sample("eventbridge_sagemaker_job_completed.json", job), CONTEXT)
        # then, out of order and duplicated: a failure from the platform and from the container,
        # the same success again under a new envelope, and a Batch failure for the same name
        job_events.handler(sample("eventbridge_sagemaker_job_failed.json", job), CONTEXT)
        job_events.handler(sample("eventbridge_container_progress_failed.json", job), CONTEXT)
        job_events.handler(sample("eventbridge_sagemaker_job_completed.json", job, "redelivered-1"), CONTEXT)
        job_events.handler(sample("eventbridge_batch_job_failed.json", job), CONTEXT)

        # the webhooks function gets the status change (and EventBridge may deliver it twice)
        changed = sample("eventbridge_job_status_changed_succeeded.json", job)
        webhooks.handler(changed, CONTEXT)
        webhooks.handler({**changed, "id": "redelivered-2"}, CONTEXT)
        time.sleep(0.2)

    final = services.jobs.get("default", job.id)
    assert final.status is JobStatus.SUCCEEDED and final.error is None
    assert published == ["RUNNING", "SUCCEEDED"]
    assert [e.epoch for e in services.store.list_epochs(job.id)] == [1]
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.READY
    assert len(receiver.requests) == 1 and json.loads(receiver.requests[0]["body"])["type"] == "job.succeeded"
    [delivery] = services.webhooks.deliveries("default", job.id)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 1


def test_failed_first_then_a_late_success_leaves_it_failed_and_persists_nothing(
    handlers: tuple[ModuleType, ModuleType], services: Services
) -> None:
    job_events, _ = handlers
    job = record_job(services.store)
    job_events.handler(sample("eventbridge_container_progress_epoch.json", job), CONTEXT)
    job_events.handler(sample("eventbridge_sagemaker_job_failed.json", job), CONTEXT)
    leave_a_finished_model(services, job)  # a run that wrote a model after all
    job_events.handler(sample("eventbridge_sagemaker_job_completed.json", job), CONTEXT)
    job_events.handler(sample("eventbridge_batch_job_succeeded.json", job), CONTEXT)

    final = services.jobs.get("default", job.id)
    assert final.status is JobStatus.FAILED and final.error == "AlgorithmError: CUDA out of memory"
    assert [e.epoch for e in services.store.list_epochs(job.id)] == [1]
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.FAILED
    assert not services.blobs.exists(f"tenants/default/models/{job.model_id}/model.onnx")


# --- concurrent writers -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[JobStore]:
    if request.param == "sqlite":
        yield SqliteJobStore(tmp_path / "store.db")
        return
    use_fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=TEST_REGION)
        create_job_table(client)
        # moto's conditional writes are not atomic across threads, DynamoDB's are (SerializedClient)
        yield DynamoDbJobStore(TEST_TABLE_NAME, client=SerializedClient(client))


def racing_writers(
    jobs: JobService, events: JobEventsService, job: Job, prefix: str, epochs: int
) -> list[Callable[[], None]]:
    """Everything that may write one job at the same moment: each epoch delivered twice, the
    container's RUNNING and failure events, a successful and a failed worker exit (a success
    redelivered after a retry that failed), and a user's cancellation."""

    def cancel() -> None:
        try:
            jobs.cancel("default", job.id)
        except Conflict:
            pass  # already ended: the API's 409, nothing changes

    epoch_events = [
        progress(job.id, "epoch", epoch=n, epochs=epochs, loss=1.0 / n) for n in range(1, epochs + 1)
    ]
    return [
        *(partial(events.handle_progress, event) for event in epoch_events * 2),
        partial(events.handle_progress, progress(job.id, "status", status="RUNNING")),
        partial(events.handle_progress, progress(job.id, "failed", error="trainer crashed")),
        partial(events.handle_worker_exit, {"job_id": job.id, "succeeded": True, "model_prefix": prefix}),
        partial(
            events.handle_worker_exit,
            {"job_id": job.id, "succeeded": False, "reason": "exit code 1", "model_prefix": prefix},
        ),
        cancel,
    ]


def run_at_once(write: Callable[[], None], barrier: threading.Barrier, errors: list[BaseException]) -> None:
    barrier.wait()
    try:
        write()
    except BaseException as exc:  # a writer that raised would be an event lost
        errors.append(exc)


def test_concurrent_writers_one_terminal_state_every_epoch_one_webhook(
    store: JobStore, tmp_path: Path
) -> None:
    blobs = DiskBlobStore(tmp_path / "blobs")
    bus = InProcessEventBus()
    jobs = JobService(store, RecordingLauncher(), bus, blobs)
    events = JobEventsService(store, blobs, jobs)
    webhooks = WebhookService(
        store, FileSecretStore(tmp_path / "secrets.json"), retry_delays=[0], timeout_seconds=1
    )
    bus.subscribe(STATUS_CHANGED, webhooks.on_job_status_changed)
    published: list[dict[str, Any]] = []
    bus.subscribe(STATUS_CHANGED, published.append)
    rng = random.Random(7)
    epochs = 6

    for _ in range(4):
        published.clear()
        job = record_job(store, webhook_url="https://hooks.example.com/trainyard")
        prefix = f"models/{job.id}/"
        blobs.put_bytes(f"{prefix}trainyard_model.json", json.dumps(MODEL_MANIFEST).encode())

        writers = racing_writers(jobs, events, job, prefix, epochs)
        rng.shuffle(writers)
        barrier = threading.Barrier(len(writers))
        errors: list[BaseException] = []

        threads = [threading.Thread(target=run_at_once, args=(write, barrier, errors)) for write in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        final = store.get_job("default", job.id)
        assert final is not None and final.status in TERMINAL
        terminal_changes = [p["status"] for p in published if JobStatus(p["status"]) in TERMINAL]
        assert terminal_changes == [final.status.value]
        assert [e.epoch for e in store.list_epochs(job.id)] == list(range(1, epochs + 1))
        assert final.current_epoch == epochs
        model = store.get_model("default", job.model_id)
        expected_model = ModelStatus.READY if final.status is JobStatus.SUCCEEDED else ModelStatus.FAILED
        assert model is not None and model.status is expected_model, (final.status, model)
        deliveries = store.list_deliveries("default", job.id)
        assert [d.event_type for d in deliveries] == [f"job.{final.status.value.lower()}"]


# --- the reaper's heartbeat timeout -------------------------------------------------------------


def test_a_running_job_silent_past_the_heartbeat_timeout_whose_worker_is_gone_fails(tmp_path: Path) -> None:
    stale = 2.0
    services = bootstrap(Settings(home=tmp_path / "home", reaper_stale_seconds=stale))
    job = record_job(services.store)
    services.jobs.transition(job.id, JobStatus.RUNNING)
    services.job_events.handle_progress(progress(job.id, "epoch", epoch=1, epochs=3, loss=0.9))
    job_dir = services.launcher.job_dir(job.id)  # type: ignore[attr-defined]
    job_dir.mkdir(parents=True, exist_ok=True)
    # a worker that vanished without a trace: its pid is gone, it left no manifest and no reason
    (job_dir / "launch.json").write_text(json.dumps({"pid": 2**22 + 11, "model_prefix": "unused/"}))

    assert services.reaper.run().examined == 0  # heard from within the timeout: left alone
    time.sleep(stale * 0.6)
    services.job_events.handle_progress(progress(job.id, "epoch", epoch=2, epochs=3, loss=0.7))  # heartbeat
    time.sleep(stale * 0.6)
    assert services.reaper.run().examined == 0, "an epoch event is a heartbeat"
    assert services.jobs.get("default", job.id).status is JobStatus.RUNNING

    time.sleep(stale * 0.6)
    report = services.reaper.run()

    assert report.settled == {job.id: "failed"}
    failed = services.jobs.get("default", job.id)
    assert failed.status is JobStatus.FAILED and failed.error, failed
    assert "worker" in failed.error
    assert [e.epoch for e in services.store.list_epochs(job.id)] == [1, 2] and failed.current_epoch == 2
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.FAILED
    assert services.reaper.run().settled == {}
