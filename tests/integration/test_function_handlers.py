"""Every Lambda handler, invoked with every sample in events/ that its rules route to it, against
the local backend: the handlers build their services from TRAINYARD_* settings (as on Lambda)
on the same home as the test's own `services`, which records the jobs and reads the results.
job_events runs with its real idempotency layer on the template's table under moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.aws_fixtures import TEST_REGION, TEST_TABLE_NAME, create_job_table
from tests.helpers import MODEL_MANIFEST, LambdaContext, body_json, record_job, webhook_receiver
from trainyard.adapters.local.subprocess_launcher import SubprocessLauncher
from trainyard.bootstrap import Services
from trainyard.domain import DeliveryStatus, Job, JobStatus, ModelStatus, platform_job_name
from trainyard.services.webhooks import verify
from trainyard.settings import Settings

EVENTS = Path(__file__).resolve().parents[2] / "events"
# the job id and API key the samples carry; tests put their own job's id in its place
SAMPLE_JOB_ID = "job_0123456789abcdef"
SAMPLE_PLATFORM_NAME = platform_job_name(SAMPLE_JOB_ID)
SAMPLE_API_KEY = "ty_sample-key-for-events-0123456789abcdefghij"

# which handler each sample is for; a new sample without a test fails the completeness check
SAMPLES_BY_HANDLER = {
    "api": {
        "apigw_http_health.json",
        "apigw_http_list_jobs_unauthorized.json",
        "apigw_http_get_job.json",
        "apigw_http_create_job.json",
        "apigw_http_console.json",
    },
    "authorizer": {"authorizer_request_valid.json", "authorizer_request_invalid.json"},
    "job_events": {
        "eventbridge_container_progress_status_running.json",
        "eventbridge_container_progress_epoch.json",
        "eventbridge_container_progress_failed.json",
        "eventbridge_sagemaker_job_completed.json",
        "eventbridge_sagemaker_job_failed.json",
        "eventbridge_sagemaker_job_stopped.json",
        "eventbridge_batch_job_succeeded.json",
        "eventbridge_batch_job_failed.json",
    },
    "webhooks": {"eventbridge_job_status_changed_succeeded.json", "scheduled_webhooks_retry.json"},
    "reaper": {"scheduled_reaper.json"},
    # an AWS-only function (its credentials come from Secrets Manager): replayed on moto in
    # test_seed002_aws.py
    "dataset_import": {"dataset_import_plan.json"},
    # the bare progress details, published on the local bus (test_sample_events.py)
    "local_bus": {
        "container_progress_status_running.json",
        "container_progress_epoch.json",
        "container_progress_failed.json",
    },
}


CONTEXT = LambdaContext()


def sample(name: str, job: Job | None = None) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    if job is not None:
        text = text.replace(SAMPLE_PLATFORM_NAME, platform_job_name(job.id)).replace(SAMPLE_JOB_ID, job.id)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@pytest.fixture
def lambda_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The environment template.yaml gives the functions, with the local backend on the test's
    home in place of the AWS one."""
    for name, value in {
        "TRAINYARD_BACKEND": "local",
        "TRAINYARD_HOME": str(settings.home),
        "TRAINYARD_TABLE_NAME": TEST_TABLE_NAME,
        "TRAINYARD_WEBHOOK_BACKOFF_SECONDS": "0",
        "TRAINYARD_REAPER_STALE_SECONDS": "0",
        "POWERTOOLS_SERVICE_NAME": "trainyard",
        "POWERTOOLS_METRICS_NAMESPACE": "TrainyardTest",
        "AWS_DEFAULT_REGION": TEST_REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    return settings


def fresh(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Drop what a previous test's invocations cached in the module (a warm container)."""
    if hasattr(module, "services"):
        module.services.forget()
    if hasattr(module, "_apply_once"):
        monkeypatch.setattr(module, "_apply_once", None)
    return module


@pytest.fixture
def job_events(lambda_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with mock_aws():
        create_job_table(boto3.client("dynamodb", region_name=TEST_REGION))
        from functions.job_events import handler

        yield fresh(handler, monkeypatch)


@pytest.fixture
def webhooks(lambda_env: Settings, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    from functions.webhooks import handler

    return fresh(handler, monkeypatch)


@pytest.fixture
def reaper(lambda_env: Settings, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    from functions.reaper import handler

    return fresh(handler, monkeypatch)


@pytest.fixture
def authorizer(lambda_env: Settings, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    from functions.authorizer import handler

    return fresh(handler, monkeypatch)


@pytest.fixture
def api(lambda_env: Settings, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    from functions.api import handler

    monkeypatch.setattr(handler, "_handler", None)
    return handler


def finished_platform_run(services: Services, job: Job) -> None:
    """What a successful run leaves for the launcher to persist (the local launcher's model dir
    stands in for SageMaker's model.tar.gz and Batch's upload)."""
    assert isinstance(services.launcher, SubprocessLauncher)
    model_dir = services.launcher.job_dir(job.id) / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "trainyard_model.json").write_text(json.dumps(MODEL_MANIFEST))
    (model_dir / "model.onnx").write_bytes(b"onnx bytes")


def test_every_sample_event_has_a_handler_test() -> None:
    covered = set().union(*SAMPLES_BY_HANDLER.values())
    assert {path.name for path in EVENTS.glob("*.json")} == covered


# --- job_events --------------------------------------------------------------------------------


def test_container_progress_samples_move_the_job_and_record_the_epoch(
    job_events: ModuleType, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    job = record_job(services.store)
    job_events.handler(sample("eventbridge_container_progress_status_running.json", job), CONTEXT)
    assert services.jobs.get("default", job.id).status is JobStatus.RUNNING
    job_events.handler(sample("eventbridge_container_progress_epoch.json", job), CONTEXT)
    running = services.jobs.get("default", job.id)
    assert running.current_epoch == 1 and running.val_accuracy == pytest.approx(0.47)
    assert [epoch.epoch for epoch in services.store.list_epochs(job.id)] == [1]
    job_events.handler(sample("eventbridge_container_progress_failed.json", job), CONTEXT)
    failed = services.jobs.get("default", job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "ImageNet weights for mobilenet_v2 are not installed"

    emitted = capsys.readouterr().out
    assert '"jobs_started"' in emitted and '"epoch_duration"' in emitted and '"jobs_failed"' in emitted


# the replay is answered from the idempotency record, so it has no metrics to publish
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_replayed_progress_event_is_applied_once(
    job_events: ModuleType, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = record_job(services.store)
    handler_services = job_events.services()
    applied: list[dict[str, Any]] = []
    original = handler_services.job_events.handle_progress

    def counting(detail: dict[str, Any]) -> None:
        applied.append(detail)
        original(detail)

    monkeypatch.setattr(handler_services.job_events, "handle_progress", counting)
    event = sample("eventbridge_container_progress_epoch.json", job)
    first = job_events.handler(event, CONTEXT)
    # EventBridge may deliver the same progress event again, even under a new envelope id
    replay = job_events.handler({**event, "id": "another-envelope-id"}, CONTEXT)
    assert first == replay == {"applied": f"{job.id}:epoch:1"}
    assert len(applied) == 1

    table = boto3.resource("dynamodb", region_name=TEST_REGION).Table(TEST_TABLE_NAME)
    items = table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "IDEMPOTENCY#job_events"}
    )["Items"]
    assert len(items) == 1 and items[0]["status"] == "COMPLETED" and int(items[0]["expires_at"]) > 0


@pytest.mark.parametrize(
    "name", ["eventbridge_sagemaker_job_completed.json", "eventbridge_batch_job_succeeded.json"]
)
def test_a_platform_success_persists_the_model_and_succeeds_the_job(
    job_events: ModuleType, services: Services, name: str
) -> None:
    job = record_job(services.store)
    finished_platform_run(services, job)
    job_events.handler(sample(name, job), CONTEXT)
    assert services.jobs.get("default", job.id).status is JobStatus.SUCCEEDED
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.READY and model.classes == ["cat", "dog"]
    assert services.blobs.get_bytes(f"tenants/default/models/{job.model_id}/model.onnx") == b"onnx bytes"


@pytest.mark.parametrize(
    "name,reason",
    [
        ("eventbridge_sagemaker_job_failed.json", "AlgorithmError: CUDA out of memory"),
        ("eventbridge_sagemaker_job_stopped.json", "training job stopped"),
        ("eventbridge_batch_job_failed.json", "Essential container in task exited"),
    ],
)
def test_a_platform_failure_fails_the_job_with_the_platform_reason(
    job_events: ModuleType, services: Services, name: str, reason: str
) -> None:
    job = record_job(services.store)
    job_events.handler(sample(name, job), CONTEXT)
    failed = services.jobs.get("default", job.id)
    assert failed.status is JobStatus.FAILED and failed.error == reason


def test_an_event_for_an_unknown_job_changes_nothing(job_events: ModuleType, services: Services) -> None:
    job = record_job(services.store)
    result = job_events.handler(sample("eventbridge_sagemaker_job_failed.json"), CONTEXT)
    assert result == {"applied": "5d1e9a0e-0000-4c4e-8f00-5a6e00000002"}
    assert services.jobs.get("default", job.id).status is JobStatus.PENDING


# --- webhooks ----------------------------------------------------------------------------------


def test_job_status_changed_delivers_a_signed_webhook_once(webhooks: ModuleType, services: Services) -> None:
    with webhook_receiver() as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.store.transition_job(job.id, JobStatus.SUCCEEDED)
        event = sample("eventbridge_job_status_changed_succeeded.json", job)
        assert webhooks.handler(event, CONTEXT) == {"attempted": 1}
        webhooks.handler(event, CONTEXT)  # a replay finds the delivery done

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert verify(services.webhooks.secret_for("default"), request["headers"], request["body"])
    assert body_json(request)["type"] == "job.succeeded" and body_json(request)["data"]["id"] == job.id
    [delivery] = services.webhooks.deliveries("default", job.id)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 1


def test_a_failed_delivery_raises_so_the_event_is_retried(webhooks: ModuleType, services: Services) -> None:
    with webhook_receiver(script=[503]) as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.store.transition_job(job.id, JobStatus.SUCCEEDED)
        event = sample("eventbridge_job_status_changed_succeeded.json", job)
        with pytest.raises(webhooks.WebhookNotDelivered, match="HTTP 503"):
            webhooks.handler(event, CONTEXT)
        [pending] = services.webhooks.deliveries("default", job.id)
        assert pending.status is DeliveryStatus.PENDING and pending.attempts == 1

        webhooks.handler(event, CONTEXT)  # the platform's retry

    assert [request["answered"] for request in receiver.requests] == [503, 200]
    [delivered] = services.webhooks.deliveries("default", job.id)
    assert delivered.status is DeliveryStatus.DELIVERED and delivered.attempts == 2


def test_the_scheduled_sweep_delivers_what_the_event_could_not(
    webhooks: ModuleType, services: Services
) -> None:
    with webhook_receiver(script=[500, 500, 500]) as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.store.transition_job(job.id, JobStatus.SUCCEEDED)
        event = sample("eventbridge_job_status_changed_succeeded.json", job)
        for _ in range(3):  # the invocation and Lambda's two async retries, all answered 500
            with pytest.raises(webhooks.WebhookNotDelivered):
                webhooks.handler(event, CONTEXT)

        assert webhooks.handler(sample("scheduled_webhooks_retry.json"), CONTEXT) == {"attempted": 1}
        assert webhooks.handler(sample("scheduled_webhooks_retry.json"), CONTEXT) == {"attempted": 0}

    assert [request["answered"] for request in receiver.requests] == [500, 500, 500, 200]
    [delivered] = services.webhooks.deliveries("default", job.id)
    assert delivered.status is DeliveryStatus.DELIVERED and delivered.attempts == 4


# --- reaper ------------------------------------------------------------------------------------


def test_the_scheduled_reaper_settles_a_job_the_platform_does_not_know(
    reaper: ModuleType, services: Services
) -> None:
    lost = record_job(services.store)
    finished = record_job(services.store)
    services.store.transition_job(finished.id, JobStatus.SUCCEEDED)

    result = reaper.handler(sample("scheduled_reaper.json"), CONTEXT)

    assert result == {"examined": 1, "settled": {lost.id: "unknown"}}
    settled = services.jobs.get("default", lost.id)
    assert settled.status is JobStatus.FAILED and settled.error is not None
    assert settled.error.startswith("worker lost")


# --- authorizer --------------------------------------------------------------------------------


def test_the_authorizer_allows_a_known_key_with_its_tenant(
    authorizer: ModuleType, services: Services
) -> None:
    services.tenants.add_key("default", SAMPLE_API_KEY)
    response = authorizer.handler(sample("authorizer_request_valid.json"), CONTEXT)
    assert response == {"isAuthorized": True, "context": {"tenant_id": "default"}}


def test_the_authorizer_denies_an_unknown_or_revoked_key(authorizer: ModuleType, services: Services) -> None:
    record, _ = services.tenants.add_key("default", SAMPLE_API_KEY)
    assert authorizer.handler(sample("authorizer_request_invalid.json"), CONTEXT) == {"isAuthorized": False}
    services.tenants.revoke(record.id)
    assert authorizer.handler(sample("authorizer_request_valid.json"), CONTEXT) == {"isAuthorized": False}


def test_the_authorizer_denies_when_the_key_cannot_be_checked(
    authorizer: ModuleType, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.tenants.add_key("default", SAMPLE_API_KEY)

    def table_unavailable(key: str) -> str:
        raise ConnectionError("table unavailable")

    monkeypatch.setattr(authorizer.services().tenants, "authenticate", table_unavailable)
    assert authorizer.handler(sample("authorizer_request_valid.json"), CONTEXT) == {"isAuthorized": False}


def test_the_authorizer_takes_the_bare_key_seed_002_sends_and_denies_other_schemes(
    authorizer: ModuleType, services: Services
) -> None:
    services.tenants.add_key("default", SAMPLE_API_KEY)
    event = sample("authorizer_request_valid.json")
    event["headers"]["authorization"] = SAMPLE_API_KEY
    assert authorizer.handler(event, CONTEXT) == {"isAuthorized": True, "context": {"tenant_id": "default"}}
    event["headers"]["authorization"] = f"Basic {SAMPLE_API_KEY}"
    assert authorizer.handler(event, CONTEXT) == {"isAuthorized": False}
    event["headers"]["authorization"] = ""
    assert authorizer.handler(event, CONTEXT) == {"isAuthorized": False}


# --- api ---------------------------------------------------------------------------------------


def test_the_api_samples_through_the_lambda_handler(api: ModuleType, services: Services) -> None:
    services.tenants.add_key("default", SAMPLE_API_KEY)
    job = record_job(services.store)

    health = api.handler(sample("apigw_http_health.json"), CONTEXT)
    assert health["statusCode"] == 200
    denied = api.handler(sample("apigw_http_list_jobs_unauthorized.json"), CONTEXT)
    assert denied["statusCode"] == 401

    fetched = api.handler(sample("apigw_http_get_job.json", job), CONTEXT)
    assert fetched["statusCode"] == 200
    assert json.loads(fetched["body"])["id"] == job.id

    # the sample's dataset does not exist here: the request gets through auth and validation
    # to the service, which answers for the missing dataset without starting anything
    created = api.handler(sample("apigw_http_create_job.json"), CONTEXT)
    assert created["statusCode"] == 404, created["body"]
    assert services.store.list_unfinished_jobs() == [services.store.get_job_any_tenant(job.id)]


def test_the_api_function_serves_the_web_console_to_a_browser_without_a_key(api: ModuleType) -> None:
    page = api.handler(sample("apigw_http_console.json"), CONTEXT)
    assert page["statusCode"] == 200
    assert page["headers"]["content-type"].startswith("text/html")
    assert "<title>Trainyard</title>" in page["body"]
    script = sample("apigw_http_console.json")
    script["rawPath"] = script["requestContext"]["http"]["path"] = "/console/app.js"
    served = api.handler(script, CONTEXT)
    assert served["statusCode"] == 200 and "javascript" in served["headers"]["content-type"]
    assert "import" in served["body"]
