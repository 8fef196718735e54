"""SageMakerLauncher against moto (S3, SageMaker) and botocore's Stubber where moto differs
from SageMaker: it accepts a duplicate job name and completes every job at once."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.aws_fixtures import BucketBlobs, use_fake_credentials
from trainyard.adapters.aws.model_artifacts import sagemaker_model_archive_key
from trainyard.adapters.aws.sagemaker_launcher import SageMakerLauncher
from trainyard.domain import new_id, platform_job_name
from trainyard.ports import ChannelFile, LaunchSpec, LaunchState, LaunchStatus

DATASETS = "test-datasets"
ARTIFACTS = "test-artifacts"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainyard-trainer:1"
ROLE = "arn:aws:iam::123456789012:role/trainyard-sagemaker"
BUS = "trainyard-test"
JOB_ID = "job_0123456789abcdef"
JOB_NAME = "trainyard-job-0123456789abcdef"
MANIFEST = '{"path": "images/a.png", "label": "cat", "split": null}\n'
HYPERPARAMETERS = {"job_id": json.dumps(JOB_ID), "epochs": "3", "exports": '["onnx"]'}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_credentials(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    for bucket in (DATASETS, ARTIFACTS):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=DATASETS, Key="tenants/t1/datasets/ds1/images/a.png", Body=b"png-a")
    client.put_object(Bucket=DATASETS, Key="tenants/t1/datasets/ds1/images/b.png", Body=b"png-b")
    return client


@pytest.fixture
def sagemaker(aws: None) -> Any:
    return boto3.client("sagemaker", region_name="us-east-1")


def make_launcher(s3: Any, sagemaker: Any, *, use_spot: bool = False) -> SageMakerLauncher:
    return SageMakerLauncher(
        BucketBlobs(s3, ARTIFACTS),  # type: ignore[arg-type]  # only put_bytes is used
        image_uris={"trainer": IMAGE},
        role_arn=ROLE,
        instance_type="ml.g5.xlarge",
        use_spot=use_spot,
        max_runtime_seconds=3600,
        max_wait_seconds=7200,
        artifacts_bucket=ARTIFACTS,
        datasets_bucket=DATASETS,
        event_bus_name=BUS,
        client=sagemaker,
        s3_client=s3,
    )


def make_spec() -> LaunchSpec:
    return LaunchSpec(
        job_id=JOB_ID,
        container="trainer",
        hyperparameters=HYPERPARAMETERS,
        channels={
            "training": [
                ChannelFile("tenants/t1/datasets/ds1/images/a.png", "images/a.png"),
                ChannelFile("tenants/t1/datasets/ds1/images/b.png", "images/b.png"),
            ]
        },
        channel_documents={"training": {"manifest.jsonl": MANIFEST}},
        model_prefix="tenants/t1/models/mdl1/",
    )


def capture_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call the client makes (it still makes them)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register(f"provide-client-params.{client.meta.service_model.endpoint_prefix}"
                                f".{operation}", record)  # fmt: skip
    return calls


def expected_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": JOB_NAME,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{ARTIFACTS}/jobs/{JOB_ID}/input/training/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{ARTIFACTS}/jobs/{JOB_ID}/output/"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": HYPERPARAMETERS,
        "Environment": {"TRAINYARD_EVENT_BUS_NAME": BUS},
        "Tags": [{"Key": "trainyard:job-id", "Value": JOB_ID}],
    }
    request.update(changes)
    return request


def test_job_names_are_valid_sagemaker_names_derived_from_the_job_id() -> None:
    assert platform_job_name(JOB_ID) == JOB_NAME
    assert len(platform_job_name(new_id("job"))) <= 63
    with pytest.raises(ValueError, match="cannot be made into a platform job name"):
        platform_job_name("job_" + "a" * 60)


def test_launch_snapshots_the_inputs_and_creates_the_training_job(s3: Any, sagemaker: Any) -> None:
    created = capture_calls(sagemaker, "CreateTrainingJob")

    launch_ref = make_launcher(s3, sagemaker).launch(make_spec())

    assert launch_ref == JOB_NAME
    assert created == [expected_request()]
    snapshot = f"jobs/{JOB_ID}/input/training/"
    listed = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=snapshot)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        f"{snapshot}images/a.png",
        f"{snapshot}images/b.png",
        f"{snapshot}manifest.jsonl",
    ]
    assert s3.get_object(Bucket=ARTIFACTS, Key=f"{snapshot}images/b.png")["Body"].read() == b"png-b"
    manifest = s3.get_object(Bucket=ARTIFACTS, Key=f"{snapshot}manifest.jsonl")["Body"].read()
    assert manifest.decode() == MANIFEST
    assert sagemaker.describe_training_job(TrainingJobName=JOB_NAME)["RoleArn"] == ROLE


def test_spot_launch_sets_wait_time_and_checkpoints(s3: Any, sagemaker: Any) -> None:
    created = capture_calls(sagemaker, "CreateTrainingJob")

    make_launcher(s3, sagemaker, use_spot=True).launch(make_spec())

    assert created == [
        expected_request(
            StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
            EnableManagedSpotTraining=True,
            CheckpointConfig={"S3Uri": f"s3://{ARTIFACTS}/jobs/{JOB_ID}/checkpoints/"},
        )
    ]


def test_spot_needs_a_wait_time_at_least_the_runtime(s3: Any, sagemaker: Any) -> None:
    with pytest.raises(ValueError, match="max_wait_seconds"):
        SageMakerLauncher(
            BucketBlobs(s3, ARTIFACTS),  # type: ignore[arg-type]
            image_uris={"trainer": IMAGE}, role_arn=ROLE, instance_type="ml.m5.large", use_spot=True,
            max_runtime_seconds=3600, max_wait_seconds=60, artifacts_bucket=ARTIFACTS,
            datasets_bucket=DATASETS, event_bus_name=BUS, client=sagemaker, s3_client=s3,
        )  # fmt: skip


def test_a_second_launch_that_gets_resource_in_use_returns_the_same_ref(s3: Any, sagemaker: Any) -> None:
    launcher = make_launcher(s3, sagemaker)
    first = launcher.launch(make_spec())
    with Stubber(sagemaker) as stub:
        stub.add_client_error(
            "create_training_job",
            service_error_code="ResourceInUse",
            service_message=f"Training job names must be unique. {JOB_NAME} exists",
            http_status_code=400,
            expected_params=expected_request(),
        )
        second = launcher.launch(make_spec())
        stub.assert_no_pending_responses()
    assert second == first == JOB_NAME


def test_other_create_errors_are_raised(s3: Any, sagemaker: Any) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_client_error("create_training_job", service_error_code="ResourceLimitExceeded")
        with pytest.raises(sagemaker.exceptions.ResourceLimitExceeded):
            make_launcher(s3, sagemaker).launch(make_spec())


def described(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": JOB_NAME,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB_NAME}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{ARTIFACTS}/jobs/{JOB_ID}/output/"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training",
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": datetime(2026, 11, 23, tzinfo=UTC),
        **extra,
    }


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (described("InProgress"), LaunchStatus(LaunchState.RUNNING)),
        (described("Stopping"), LaunchStatus(LaunchState.RUNNING)),
        (described("Completed"), LaunchStatus(LaunchState.SUCCEEDED)),
        (
            described("Failed", FailureReason="AlgorithmError: out of memory"),
            LaunchStatus(LaunchState.FAILED, "AlgorithmError: out of memory"),
        ),
        (described("Stopped"), LaunchStatus(LaunchState.FAILED, "stopped")),
    ],
)
def test_describe_maps_training_job_status(
    s3: Any, sagemaker: Any, response: dict[str, Any], expected: LaunchStatus
) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_training_job", response, {"TrainingJobName": JOB_NAME})
        assert make_launcher(s3, sagemaker).describe(JOB_ID, JOB_NAME) == expected


def test_describe_of_a_job_sagemaker_does_not_know_is_unknown(s3: Any, sagemaker: Any) -> None:
    # moto answers with ValidationException "Could not find training job …".
    status = make_launcher(s3, sagemaker).describe(JOB_ID, None)
    assert status.state is LaunchState.UNKNOWN


def test_describe_treats_sagemakers_not_found_message_as_unknown(s3: Any, sagemaker: Any) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_client_error(
            "describe_training_job",
            service_error_code="ValidationException",
            service_message="Requested resource not found.",
        )
        stub.add_client_error(
            "describe_training_job",
            service_error_code="ValidationException",
            service_message="1 validation error detected: Value at 'trainingJobName' failed",
        )
        launcher = make_launcher(s3, sagemaker)
        assert launcher.describe(JOB_ID, JOB_NAME).state is LaunchState.UNKNOWN
        with pytest.raises(sagemaker.exceptions.ClientError):
            launcher.describe(JOB_ID, JOB_NAME)


def test_describe_of_a_launched_job_reads_the_platform(s3: Any, sagemaker: Any) -> None:
    launcher = make_launcher(s3, sagemaker)
    launcher.launch(make_spec())
    assert launcher.describe(JOB_ID, JOB_NAME) == LaunchStatus(LaunchState.SUCCEEDED)  # moto: at once


def test_stop_stops_the_training_job_and_ignores_one_that_already_ended(s3: Any, sagemaker: Any) -> None:
    launcher = make_launcher(s3, sagemaker)
    with Stubber(sagemaker) as stub:
        stub.add_response("stop_training_job", {}, {"TrainingJobName": JOB_NAME})
        stub.add_client_error(
            "stop_training_job",
            service_error_code="ValidationException",
            service_message="The request was rejected because the training job is in status Stopped.",
            expected_params={"TrainingJobName": JOB_NAME},
        )
        launcher.stop(JOB_ID, JOB_NAME)
        launcher.stop(JOB_ID, JOB_NAME)
        stub.assert_no_pending_responses()


def test_stop_raises_errors_other_than_already_stopped(s3: Any, sagemaker: Any) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_client_error("stop_training_job", service_error_code="ThrottlingException")
        with pytest.raises(sagemaker.exceptions.ClientError):
            make_launcher(s3, sagemaker).stop(JOB_ID, JOB_NAME)


def test_persist_model_extracts_the_model_archive_under_the_model_prefix(s3: Any, sagemaker: Any) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("model.onnx", b"onnx"), ("trainyard_model.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=ARTIFACTS, Key=sagemaker_model_archive_key(JOB_ID), Body=archive.getvalue())

    make_launcher(s3, sagemaker).persist_model(JOB_ID, "tenants/t1/models/mdl1/")

    model_key = "tenants/t1/models/mdl1/model.onnx"
    assert s3.get_object(Bucket=ARTIFACTS, Key=model_key)["Body"].read() == b"onnx"
    assert sagemaker_model_archive_key(JOB_ID) == (f"jobs/{JOB_ID}/output/{JOB_NAME}/output/model.tar.gz")
