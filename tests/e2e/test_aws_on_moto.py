"""The AWS path end to end, with moto standing in for AWS: the API (as the Lambda app builds
it from TRAINYARD_* settings) records a job in DynamoDB and launches it on SageMaker or Batch;
the container's progress events and the platform's terminal event go through the job_events
function; EventBridge delivers "Job Status Changed" (a rule on the bus → an SQS queue here,
read back and handed to the webhooks function as EventBridge would); the webhook arrives
signed. A duplicate terminal event changes nothing and sends nothing; a job whose terminal
event never came is found by the reaper function."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import functions.job_events.handler as job_events_function
import functions.reaper.handler as reaper_function
import functions.webhooks.handler as webhooks_function
from tests.aws_fixtures import (
    AWS_BATCH_QUEUE,
    AWS_TRAINER_IMAGE,
    TEST_REGION,
    TEST_TABLE_NAME,
    AwsStack,
    aws_stack_on_moto,
    eventbridge_envelope,
    scheduled_event,
)
from tests.helpers import MODEL_MANIFEST, body_json, webhook_receiver
from tests.synthetic import class_folder_zip
from trainyard.adapters.aws.model_artifacts import batch_model_prefix, sagemaker_model_archive_key
from trainyard.domain import platform_job_name
from trainyard.services.webhooks import verify

pytestmark = pytest.mark.e2e

DATASETS, ARTIFACTS = "trainyard-e2e-datasets", "trainyard-e2e-artifacts"
API_KEY = "ty_aws_e2e_" + "k" * 32
FUNCTIONS = (job_events_function, webhooks_function, reaper_function)


def progress(job_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    discriminator = fields.get("status") or fields.get("epoch") or ""
    detail = {"schema": "trainyard.job-progress/1", "event_id": f"{job_id}:{kind}:{discriminator}",
              "job_id": job_id, "time": "2026-11-22T23:00:00+00:00", "kind": kind, **fields}  # fmt: skip
    return eventbridge_envelope("trainyard.container", "Job Progress", detail)


def terminal_event(launcher: str, job_id: str) -> dict[str, Any]:
    name = platform_job_name(job_id)
    if launcher == "sagemaker":
        detail = {"TrainingJobName": name, "TrainingJobStatus": "Completed"}
        return eventbridge_envelope("aws.sagemaker", "SageMaker Training Job State Change", detail)
    detail = {"jobName": name, "status": "SUCCEEDED"}
    return eventbridge_envelope("aws.batch", "Batch Job State Change", detail)


def leave_model_where_the_platform_does(launcher: str, job_id: str) -> None:
    """What the container leaves behind: SageMaker tars the model dir into its output path;
    a Batch container uploads the dir itself."""
    s3 = boto3.client("s3", region_name=TEST_REGION)
    files = {"trainyard_model.json": json.dumps(MODEL_MANIFEST).encode(), "model.onnx": b"onnx-bytes"}
    if launcher == "sagemaker":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        s3.put_object(Bucket=ARTIFACTS, Key=sagemaker_model_archive_key(job_id), Body=buffer.getvalue())
    else:
        for name, data in files.items():
            s3.put_object(Bucket=ARTIFACTS, Key=f"{batch_model_prefix(job_id)}{name}", Body=data)


@pytest.fixture(params=["sagemaker", "batch"])
def stack(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[AwsStack]:
    launcher: str = request.param
    extra_env = {
        "TRAINYARD_USE_SPOT": "true",
        "TRAINYARD_MAX_RUNTIME_SECONDS": "7200", "TRAINYARD_MAX_WAIT_SECONDS": "14400",
        "TRAINYARD_REAPER_STALE_SECONDS": "0", "TRAINYARD_WEBHOOK_BACKOFF_SECONDS": "0",
        "POWERTOOLS_METRICS_NAMESPACE": "Trainyard", "TRAINYARD_IDEMPOTENCY_TABLE": TEST_TABLE_NAME,
    }  # fmt: skip
    with aws_stack_on_moto(
        monkeypatch,
        home=tmp_path / "lambda-tmp",
        launcher=launcher,
        datasets_bucket=DATASETS,
        artifacts_bucket=ARTIFACTS,
        api_key=API_KEY,
        functions=FUNCTIONS,  # each Lambda container builds its own services
        extra_env=extra_env,
    ) as stack:
        yield stack


def start_job(stack: AwsStack, webhook_url: str | None = None) -> dict[str, Any]:
    dataset = stack.api.post("/v1/datasets", data={"name": "shapes"},
                             files={"file": ("shapes.zip", class_folder_zip(3, seed=5))})  # fmt: skip
    assert dataset.status_code == 201, dataset.text
    body = {"type": "train", "dataset_id": dataset.json()["id"], "model_name": "shapes",
            "params": {"epochs": 3, "image_size": 32}, "webhook_url": webhook_url}  # fmt: skip
    created = stack.api.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    return dict(created.json())


def assert_launched_as_configured(stack: AwsStack, job_id: str) -> None:
    name = platform_job_name(job_id)
    if stack.launcher == "sagemaker":
        run = boto3.client("sagemaker", region_name=TEST_REGION).describe_training_job(TrainingJobName=name)
        assert run["AlgorithmSpecification"]["TrainingImage"] == AWS_TRAINER_IMAGE
        assert run["RoleArn"].endswith("role/trainyard-sagemaker")
        assert json.loads(run["HyperParameters"]["epochs"]) == 3
        assert json.loads(run["HyperParameters"]["job_id"]) == job_id
        channel = run["InputDataConfig"][0]
        assert channel["ChannelName"] == "training"
        assert (
            channel["DataSource"]["S3DataSource"]["S3Uri"]
            == f"s3://{ARTIFACTS}/jobs/{job_id}/input/training/"
        )
        assert run["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
        assert run["EnableManagedSpotTraining"] is True  # TRAINYARD_USE_SPOT=true
        assert run["CheckpointConfig"]["S3Uri"] == f"s3://{ARTIFACTS}/jobs/{job_id}/checkpoints/"
        assert run["OutputDataConfig"]["S3OutputPath"] == f"s3://{ARTIFACTS}/jobs/{job_id}/output/"
    else:
        batch = boto3.client("batch", region_name=TEST_REGION)
        found = batch.list_jobs(jobQueue=AWS_BATCH_QUEUE, filters=[{"name": "JOB_NAME", "values": [name]}])
        assert len(found["jobSummaryList"]) == 1
        described = batch.describe_jobs(jobs=[found["jobSummaryList"][0]["jobId"]])["jobs"][0]
        # (moto's DescribeJobs omits retryStrategy; test_batch_launcher checks the submitted one)
        environment = {e["name"]: e["value"] for e in described["container"]["environment"]}
        assert environment["TRAINYARD_MODEL_S3_URI"] == f"s3://{ARTIFACTS}/jobs/{job_id}/model/"
        assert json.loads(json.loads(environment["TRAINYARD_HYPERPARAMETERS_JSON"])["epochs"]) == 3
    manifest = (
        boto3.client("s3", region_name=TEST_REGION)
        .get_object(Bucket=ARTIFACTS, Key=f"jobs/{job_id}/input/training/manifest.jsonl")["Body"]
        .read()
    )
    assert len(manifest.splitlines()) == 9  # the dataset's images, snapshotted for the run


def test_a_job_runs_end_to_end_on_the_aws_path(stack: AwsStack) -> None:
    with webhook_receiver() as receiver:
        created = start_job(stack, receiver.url)
        job_id = created["id"]
        assert_launched_as_configured(stack, job_id)

        for event in (progress(job_id, "status", status="RUNNING"),
                      *(progress(job_id, "epoch", epoch=n, epochs=3, loss=1.0 / n, val_loss=1.1 / n,
                                 accuracy=0.3 * n, val_accuracy=0.3 * n, lr=0.001, duration_seconds=2.0)
                        for n in (1, 2, 3))):  # fmt: skip
            stack.invoke(job_events_function, event)
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "RUNNING" and job["current_epoch"] == 3
        assert [e["epoch"] for e in stack.api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]] == [1, 2, 3]

        leave_model_where_the_platform_does(stack.launcher, job_id)
        stack.invoke(job_events_function, terminal_event(stack.launcher, job_id))
        assert stack.api.get(f"/v1/jobs/{job_id}").json()["status"] == "SUCCEEDED"
        model = stack.api.get(f"/v1/models/{created['model_id']}").json()
        assert model["status"] == "ready" and model["exports"] == ["onnx"]
        export = stack.api.get(f"/v1/models/{created['model_id']}/exports/onnx", follow_redirects=False)
        assert export.status_code == 307  # straight from S3, presigned, not through the function
        location = export.headers["location"]
        assert ARTIFACTS in location and f"models/{created['model_id']}/model.onnx" in location
        assert "Signature" in location or "X-Amz-Signature" in location

        changes = [c for c in stack.status_changes() if c["detail"]["status"] == "SUCCEEDED"]
        assert len(changes) == 1
        stack.invoke(webhooks_function, changes[0])
        assert receiver.received.wait(10)

        # EventBridge delivers at least once: the same terminal state again, under a new envelope
        stack.invoke(job_events_function, terminal_event(stack.launcher, job_id))
        assert [c for c in stack.status_changes() if c["detail"]["status"] == "SUCCEEDED"] == []
        stack.invoke(webhooks_function, changes[0])  # and the webhooks function retried, too
        time.sleep(0.3)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    secret = stack.services.webhooks.secret_for("default")  # kept in Secrets Manager
    assert verify(secret, request["headers"], request["body"])
    assert body_json(request)["type"] == "job.succeeded" and body_json(request)["data"]["id"] == job_id
    log = stack.api.get(f"/v1/jobs/{job_id}/webhooks").json()["items"]
    assert len(log) == 1 and log[0]["status"] == "delivered"


def test_the_reaper_finds_a_job_whose_terminal_event_never_came(stack: AwsStack) -> None:
    job_id = start_job(stack)["id"]
    leave_model_where_the_platform_does(stack.launcher, job_id)
    deadline = time.monotonic() + 60
    while stack.api.get(f"/v1/jobs/{job_id}").json()["status"] == "PENDING":
        # moto finishes SageMaker runs at once and Batch runs within seconds; no event is sent
        assert time.monotonic() < deadline, "the reaper never settled the job"
        stack.invoke(reaper_function, scheduled_event())
        time.sleep(0.5)
    assert stack.api.get(f"/v1/jobs/{job_id}").json()["status"] == "SUCCEEDED"
