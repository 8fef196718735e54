"""Webhook reliability on the AWS path, with moto standing in for AWS: endpoints and their
secrets live in DynamoDB and Secrets Manager, a job's terminal status comes from the platform's
event through the job_events function, EventBridge carries "Job Status Changed" to the webhooks
function (a rule on the bus → an SQS queue here, read back and handed over as EventBridge
would), and the function's one-minute schedule is invoked by hand with a "Scheduled Event".

The local stack's tests (tests/integration/test_webhooks_reliability.py) cover the same
behaviour with an in-process worker; here it is the Lambda handlers that must do it: a 410
disables the endpoint and rotation enables it again, a failed attempt is retried by the
schedule once its backoff has passed (and by nothing before), and a redelivery asked of the API
function is sent by the schedule, since the API function sends nothing itself. The receiver is
a real HTTP server on loopback (aws_backend_on_moto turns TRAINYARD_ALLOW_LOOPBACK_URLS on); the
retry schedule is shrunk to seconds, as the local tests shrink it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

import functions.job_events.handler as job_events_function
import functions.webhooks.handler as webhooks_function
from tests.aws_fixtures import (
    TEST_REGION,
    TEST_TABLE_NAME,
    AwsStack,
    aws_stack_on_moto,
    eventbridge_envelope,
    scheduled_event,
)
from tests.helpers import webhook_receiver
from tests.synthetic import class_folder_zip
from trainyard.domain import platform_job_name, utcnow
from trainyard.services.webhooks import verify

pytestmark = pytest.mark.e2e

DATASETS, ARTIFACTS = "trainyard-webhooks-datasets", "trainyard-webhooks-artifacts"
API_KEY = "ty_aws_hooks_" + "k" * 32
# three retries, 3 s apart (±20% jitter): long enough that an invocation right after a failed
# attempt finds nothing due, short enough to wait out
RETRY_DELAY_SECONDS = 3.0


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AwsStack]:
    extra_env = {
        "TRAINYARD_WEBHOOK_RETRY_SCHEDULE_SECONDS": json.dumps([RETRY_DELAY_SECONDS] * 3),
        "TRAINYARD_WEBHOOK_TIMEOUT_SECONDS": "2",
        "POWERTOOLS_METRICS_NAMESPACE": "Trainyard",
        "TRAINYARD_IDEMPOTENCY_TABLE": TEST_TABLE_NAME,
    }
    with aws_stack_on_moto(
        monkeypatch,
        home=tmp_path / "lambda-tmp",
        launcher="sagemaker",  # the webhook path does not depend on the launcher
        datasets_bucket=DATASETS,
        artifacts_bucket=ARTIFACTS,
        api_key=API_KEY,
        functions=(job_events_function, webhooks_function),
        extra_env=extra_env,
    ) as aws:
        yield aws


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload_dataset(stack: AwsStack, headers: dict[str, str] | None = None) -> str:
    dataset = stack.api.post("/v1/datasets", data={"name": "shapes"},
                             files={"file": ("shapes.zip", class_folder_zip(3, seed=5))},
                             headers=headers)  # fmt: skip
    assert dataset.status_code == 201, dataset.text
    return str(dataset.json()["id"])


def start_job(
    stack: AwsStack, dataset_id: str, webhook_url: str, headers: dict[str, str] | None = None
) -> str:
    body = {"type": "train", "dataset_id": dataset_id, "model_name": "shapes",
            "params": {"epochs": 1, "image_size": 32}, "webhook_url": webhook_url}  # fmt: skip
    created = stack.api.post("/v1/jobs", json=body, headers=headers)
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


def fail_on_sagemaker(stack: AwsStack, job_id: str) -> dict[str, Any]:
    """SageMaker reports the run failed; returns the "Job Status Changed" event that EventBridge
    hands to the webhooks function for it."""
    detail = {"TrainingJobName": platform_job_name(job_id), "TrainingJobStatus": "Failed",
              "FailureReason": "AlgorithmError: out of memory"}  # fmt: skip
    stack.invoke(
        job_events_function,
        eventbridge_envelope("aws.sagemaker", "SageMaker Training Job State Change", detail),
    )
    [change] = [
        c
        for c in stack.status_changes()
        if c["detail"]["job_id"] == job_id and c["detail"]["status"] == "FAILED"
    ]
    return change


def delivery_log(stack: AwsStack, job_id: str) -> dict[str, Any]:
    [delivery] = stack.api.get(f"/v1/jobs/{job_id}/webhooks").json()["items"]
    return dict(delivery)


def stored_endpoint_secrets(endpoint_id: str) -> dict[str, str]:
    """An endpoint's signing secrets as Secrets Manager holds them (the table never does)."""
    secrets = boto3.client("secretsmanager", region_name=TEST_REGION)
    stored = json.loads(
        secrets.get_secret_value(SecretId=f"trainyard/webhook-endpoint/default/{endpoint_id}")["SecretString"]
    )
    table = json.dumps(
        boto3.client("dynamodb", region_name=TEST_REGION).scan(TableName=TEST_TABLE_NAME)["Items"]
    )
    assert not [value for value in stored.values() if value.startswith("whsec_") and value in table]
    return {name: value for name, value in stored.items() if name != "previous_expires_at"}


def sweep(stack: AwsStack) -> int:
    """One run of the webhooks function's schedule; how many attempts it made."""
    attempted: int = stack.invoke(webhooks_function, scheduled_event())["attempted"]
    return attempted


def test_410_disables_the_endpoint_nothing_more_is_sent_and_rotation_enables_it(stack: AwsStack) -> None:
    with webhook_receiver(script=[410]) as receiver:
        registered = stack.api.post("/v1/webhook-endpoints", json={"url": receiver.url})
        assert registered.status_code == 201, registered.text
        endpoint = registered.json()
        assert endpoint["status"] == "enabled" and endpoint["secret"].startswith("whsec_")
        dataset_id = upload_dataset(stack)

        first = start_job(stack, dataset_id, receiver.url)
        # the event's invocation ends normally: a 410 is final, so nothing asks Lambda to retry
        assert stack.invoke(webhooks_function, fail_on_sagemaker(stack, first)) == {"attempted": 1}
        disabled = stack.api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
        assert disabled["status"] == "disabled" and "410" in disabled["disabled_reason"]
        gone = delivery_log(stack, first)
        assert gone["status"] == "failed" and gone["attempts"] == 1 and "410" in gone["last_error"]
        assert [entry["status_code"] for entry in gone["attempt_log"]] == [410]
        assert sweep(stack) == 0  # and the schedule does not retry it

        second = start_job(stack, dataset_id, receiver.url)
        stack.invoke(webhooks_function, fail_on_sagemaker(stack, second))
        skipped = delivery_log(stack, second)
        assert (
            skipped["status"] == "failed" and skipped["attempts"] == 0 and "disabled" in skipped["last_error"]
        )
        assert len(receiver.requests) == 1  # the later event was not sent
        refused = stack.api.post(f"/v1/jobs/{second}/webhooks/{skipped['id']}/redeliver")
        assert refused.status_code == 409 and "disabled" in refused.text

        rotated = stack.api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate")
        assert rotated.status_code == 200, rotated.text
        secret = rotated.json()["secret"]
        assert stack.api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()["status"] == "enabled"
        assert stored_endpoint_secrets(endpoint["id"]) == {"current": secret, "previous": endpoint["secret"]}
        assert stack.api.post(f"/v1/jobs/{second}/webhooks/{skipped['id']}/redeliver").status_code == 202
        assert len(receiver.requests) == 1  # the API function queues the redelivery; the schedule sends it
        assert sweep(stack) == 1

    assert [request["answered"] for request in receiver.requests] == [410, 200]
    resent = receiver.requests[1]
    assert resent["headers"]["webhook-id"] == skipped["id"]
    assert verify(secret, resent["headers"], resent["body"])  # the rotated secret, from Secrets Manager
    assert verify(endpoint["secret"], resent["headers"], resent["body"])  # and the old one, in its grace
    delivered = delivery_log(stack, second)
    assert delivered["status"] == "delivered" and delivered["series"] == 2
    assert [(entry["series"], entry["status_code"]) for entry in delivered["attempt_log"]] == [(2, 200)]


def test_a_500_is_retried_by_the_schedule_once_its_backoff_passes_and_arrives_once(stack: AwsStack) -> None:
    with webhook_receiver(script=[500]) as receiver:
        job_id = start_job(stack, upload_dataset(stack), receiver.url)
        change = fail_on_sagemaker(stack, job_id)
        with pytest.raises(webhooks_function.WebhookNotDelivered, match="500"):
            stack.invoke(webhooks_function, change)  # failed on purpose: Lambda retries the event
        pending = delivery_log(stack, job_id)
        assert pending["status"] == "pending" and pending["attempts"] == 1
        due_at = datetime.fromisoformat(pending["next_attempt_at"])
        assert due_at > utcnow()

        # Lambda's first retry of the event and a sweep, both before the backoff ran out: they
        # find nothing due and send nothing
        with pytest.raises(webhooks_function.WebhookNotDelivered):
            stack.invoke(webhooks_function, change)
        assert sweep(stack) == 0
        assert len(receiver.requests) == 1

        time.sleep(max(0.0, (due_at - utcnow()).total_seconds()) + 0.05)
        assert sweep(stack) == 1  # the schedule's run after the backoff: the receiver recovered
        # Lambda's second retry of the event, and later sweeps, find it delivered
        assert stack.invoke(webhooks_function, change) == {"attempted": 0}
        assert sweep(stack) == 0

    delivered = delivery_log(stack, job_id)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 2
    assert [entry["status_code"] for entry in delivered["attempt_log"]] == [500, 200]
    assert {request["headers"]["webhook-id"] for request in receiver.requests} == {delivered["id"]}
    assert [request["answered"] for request in receiver.requests] == [500, 200]  # accepted exactly once
    secret = stack.services.webhooks.secret_for("default")  # not registered: the tenant-wide secret
    assert all(verify(secret, request["headers"], request["body"]) for request in receiver.requests)


def test_redelivery_sends_the_same_webhook_id_as_a_new_series_and_only_to_its_tenant(stack: AwsStack) -> None:
    _, _, other_key = stack.services.tenants.create_tenant("other")
    with webhook_receiver() as receiver:
        job_id = start_job(stack, upload_dataset(stack), receiver.url)
        assert stack.invoke(webhooks_function, fail_on_sagemaker(stack, job_id)) == {"attempted": 1}
        first = delivery_log(stack, job_id)
        assert first["status"] == "delivered"

        answer = stack.api.post(f"/v1/jobs/{job_id}/webhooks/{first['id']}/redeliver")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "pending" and answer.json()["series"] == 2
        again = stack.api.post(f"/v1/jobs/{job_id}/webhooks/{first['id']}/redeliver")
        assert again.status_code == 409  # the new series is still pending
        assert len(receiver.requests) == 1  # the API function sends nothing itself
        assert sweep(stack) == 1
        assert sweep(stack) == 0

        other_job = start_job(
            stack, upload_dataset(stack, bearer(other_key)), receiver.url, bearer(other_key)
        )
        stack.invoke(webhooks_function, fail_on_sagemaker(stack, other_job))
        [others] = stack.api.get(f"/v1/jobs/{other_job}/webhooks", headers=bearer(other_key)).json()["items"]
        assert others["status"] == "delivered"

    assert [request["headers"]["webhook-id"] for request in receiver.requests] == [first["id"]] * 2 + [
        others["id"]
    ]
    redelivered = delivery_log(stack, job_id)
    assert (
        redelivered["status"] == "delivered" and redelivered["series"] == 2 and redelivered["attempts"] == 1
    )
    assert [(entry["series"], entry["status_code"]) for entry in redelivered["attempt_log"]] == [
        (1, 200),
        (2, 200),
    ]

    # another tenant's delivery: not found, whether asked under its job or under one's own
    assert stack.api.get(f"/v1/jobs/{other_job}/webhooks").status_code == 404
    assert stack.api.post(f"/v1/jobs/{other_job}/webhooks/{others['id']}/redeliver").status_code == 404
    assert stack.api.post(f"/v1/jobs/{job_id}/webhooks/{others['id']}/redeliver").status_code == 404
    mine = stack.api.post(f"/v1/jobs/{job_id}/webhooks/{first['id']}/redeliver", headers=bearer(other_key))
    assert mine.status_code == 404
    assert delivery_log(stack, job_id)["series"] == 2  # none of those started a series
