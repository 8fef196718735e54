"""BatchLauncher against moto's AWS Batch (no Docker: moto runs jobs to SUCCEEDED itself)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.aws_fixtures import BucketBlobs, create_batch_environment, use_fake_credentials
from trainyard.adapters.aws.batch_launcher import BatchLauncher
from trainyard.domain import platform_job_name
from trainyard.ports import ChannelFile, LaunchSpec, LaunchState, LaunchStatus

DATASETS = "test-datasets"
ARTIFACTS = "test-artifacts"
BUS = "trainyard-test"
QUEUE = "trainyard-queue"
DEFINITION = "trainyard-trainer"
JOB_ID = "job_0123456789abcdef"
JOB_NAME = platform_job_name(JOB_ID)
HYPERPARAMETERS = {"job_id": json.dumps(JOB_ID), "epochs": "3"}
MANIFEST = '{"path": "images/a.png", "label": "cat", "split": null}\n'


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_credentials(monkeypatch)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    for bucket in (DATASETS, ARTIFACTS):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=DATASETS, Key="tenants/t1/datasets/ds1/images/a.png", Body=b"png-a")
    return client


@pytest.fixture
def batch(aws: None) -> Any:
    return create_batch_environment(QUEUE, DEFINITION)


def make_launcher(s3: Any, batch: Any, intents: list[tuple[str, str]] | None = None) -> BatchLauncher:
    return BatchLauncher(
        job_queue=QUEUE,
        job_definitions={"trainer": DEFINITION},
        artifacts_bucket=ARTIFACTS,
        datasets_bucket=DATASETS,
        event_bus_name=BUS,
        max_runtime_seconds=3600,
        blobs=BucketBlobs(s3, ARTIFACTS),  # type: ignore[arg-type]  # only put_bytes is used
        client=batch,
        s3_client=s3,
        intent_recorder=None if intents is None else lambda job, ref: intents.append((job, ref)),
    )


def make_spec() -> LaunchSpec:
    return LaunchSpec(
        job_id=JOB_ID,
        container="trainer",
        hyperparameters=HYPERPARAMETERS,
        channels={"training": [ChannelFile("tenants/t1/datasets/ds1/images/a.png", "images/a.png")]},
        channel_documents={"training": {"manifest.jsonl": MANIFEST}},
        model_prefix="tenants/t1/models/mdl1/",
    )


def capture_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call the client makes (it still makes them)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register(f"provide-client-params.batch.{operation}", record)
    return calls


def wait_for_state(launcher: BatchLauncher, launch_ref: str, state: LaunchState) -> LaunchStatus:
    deadline = time.monotonic() + 30
    status = launcher.describe(JOB_ID, launch_ref)
    while status.state is not state and time.monotonic() < deadline:
        time.sleep(0.2)
        status = launcher.describe(JOB_ID, launch_ref)
    return status


def test_launch_records_intent_snapshots_inputs_and_submits_the_job(s3: Any, batch: Any) -> None:
    submitted = capture_calls(batch, "SubmitJob")
    intents: list[tuple[str, str]] = []

    launch_ref = make_launcher(s3, batch, intents).launch(make_spec())

    assert intents == [(JOB_ID, f"batch-pending:{JOB_ID}")]
    assert submitted == [
        {
            "jobName": JOB_NAME,
            "jobQueue": QUEUE,
            "jobDefinition": DEFINITION,
            "containerOverrides": {
                "environment": [
                    {"name": "SAGEMAKER_BASE_DIR", "value": "/opt/ml"},
                    {"name": "SM_CHANNEL_TRAINING", "value": "/opt/ml/input/data/training"},
                    {"name": "SM_MODEL_DIR", "value": "/opt/ml/model"},
                    {"name": "TRAINYARD_EVENT_BUS_NAME", "value": BUS},
                    {
                        "name": "TRAINYARD_INPUT_S3_URIS",
                        "value": json.dumps({"training": f"s3://{ARTIFACTS}/jobs/{JOB_ID}/input/training/"}),
                    },
                    {"name": "TRAINYARD_MODEL_S3_URI", "value": f"s3://{ARTIFACTS}/jobs/{JOB_ID}/model/"},
                    {"name": "TRAINYARD_HYPERPARAMETERS_JSON", "value": json.dumps(HYPERPARAMETERS)},
                ]
            },
            "retryStrategy": {
                "attempts": 3,
                "evaluateOnExit": [
                    {"onStatusReason": "Host EC2*", "action": "RETRY"},
                    {"onReason": "*", "action": "EXIT"},
                ],
            },
            "timeout": {"attemptDurationSeconds": 3600},
            "tags": {"trainyard:job-id": JOB_ID},
            "propagateTags": True,
        }
    ]
    (job,) = batch.describe_jobs(jobs=[launch_ref])["jobs"]
    assert job["jobName"] == JOB_NAME
    snapshot = f"jobs/{JOB_ID}/input/training/"
    manifest = s3.get_object(Bucket=ARTIFACTS, Key=f"{snapshot}manifest.jsonl")["Body"].read()
    assert manifest.decode() == MANIFEST
    assert s3.get_object(Bucket=ARTIFACTS, Key=f"{snapshot}images/a.png")["Body"].read() == b"png-a"


def test_a_second_launch_finds_the_submitted_job_and_does_not_submit_again(s3: Any, batch: Any) -> None:
    submitted = capture_calls(batch, "SubmitJob")
    intents: list[tuple[str, str]] = []
    launcher = make_launcher(s3, batch, intents)

    first = launcher.launch(make_spec())
    second = launcher.launch(make_spec())

    assert second == first
    assert len(submitted) == 1
    assert len(intents) == 1


def test_a_finished_job_is_found_too(s3: Any, batch: Any) -> None:
    submitted = capture_calls(batch, "SubmitJob")
    launcher = make_launcher(s3, batch)
    first = launcher.launch(make_spec())
    assert wait_for_state(launcher, first, LaunchState.SUCCEEDED).state is LaunchState.SUCCEEDED

    assert launcher.launch(make_spec()) == first
    assert len(submitted) == 1


def test_describe_reads_the_job_by_id_or_by_name_while_only_intent_was_recorded(s3: Any, batch: Any) -> None:
    launcher = make_launcher(s3, batch)
    assert launcher.describe(JOB_ID, f"batch-pending:{JOB_ID}").state is LaunchState.UNKNOWN
    launch_ref = launcher.launch(make_spec())

    assert wait_for_state(launcher, launch_ref, LaunchState.SUCCEEDED) == LaunchStatus(LaunchState.SUCCEEDED)
    assert launcher.describe(JOB_ID, f"batch-pending:{JOB_ID}") == LaunchStatus(LaunchState.SUCCEEDED)
    assert launcher.describe(JOB_ID, "00000000-0000-0000-0000-000000000000").state is LaunchState.UNKNOWN


def batch_job(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobs": [
            {"jobName": JOB_NAME, "jobId": "batch-1", "jobQueue": QUEUE, "status": status,
             "startedAt": 0, "jobDefinition": DEFINITION, **extra}
        ]
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "extra", "expected"),
    [
        *[
            (status, {}, LaunchStatus(LaunchState.RUNNING))
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
        ],
        ("SUCCEEDED", {}, LaunchStatus(LaunchState.SUCCEEDED)),
        (
            "FAILED",
            {"statusReason": "Essential container in task exited"},
            LaunchStatus(LaunchState.FAILED, "Essential container in task exited"),
        ),
    ],
)
def test_describe_maps_batch_status(
    s3: Any, batch: Any, status: str, extra: dict[str, Any], expected: LaunchStatus
) -> None:
    with Stubber(batch) as stub:
        stub.add_response("describe_jobs", batch_job(status, **extra), {"jobs": ["batch-1"]})
        assert make_launcher(s3, batch).describe(JOB_ID, "batch-1") == expected


def test_stop_terminates_the_job(s3: Any, batch: Any) -> None:
    terminated = capture_calls(batch, "TerminateJob")
    launcher = make_launcher(s3, batch)
    launch_ref = launcher.launch(make_spec())

    launcher.stop(JOB_ID, launch_ref)
    launcher.stop(JOB_ID, f"batch-pending:{JOB_ID}")

    assert terminated == [{"jobId": launch_ref, "reason": "cancelled by user"}] * 2


def test_stop_without_a_submitted_job_does_nothing(s3: Any, batch: Any) -> None:
    terminated = capture_calls(batch, "TerminateJob")
    make_launcher(s3, batch).stop(JOB_ID, f"batch-pending:{JOB_ID}")
    assert terminated == []


def test_persist_model_copies_the_uploaded_model_dir(s3: Any, batch: Any) -> None:
    for name, body in (("model.onnx", b"onnx"), ("trainyard_model.json", b"{}")):
        s3.put_object(Bucket=ARTIFACTS, Key=f"jobs/{JOB_ID}/model/{name}", Body=body)

    make_launcher(s3, batch).persist_model(JOB_ID, "tenants/t1/models/mdl1/")

    listed = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix="tenants/t1/models/mdl1/")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "tenants/t1/models/mdl1/model.onnx",
        "tenants/t1/models/mdl1/trainyard_model.json",
    ]
