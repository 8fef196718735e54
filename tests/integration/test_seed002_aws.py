"""Seed 002's POST /starttraining/ on the AWS backend, with moto standing in for AWS: the API (as
the Lambda app builds it from TRAINYARD_* settings) records the job PENDING, leaves the storage
credentials in Secrets Manager and invokes the dataset_import function asynchronously with a
payload that holds no credential; the function (its real handler, given that payload) takes
the secret (read and deleted), downloads the dataset from the caller's bucket (moto's S3 server
with IAM checking of the keys, so wrong keys are refused), stores it in the datasets bucket and
launches the training on SageMaker or Batch. Failures end FAILED with a message and leave no
secret; a redelivered invocation changes nothing; the credentials appear nowhere.

moto cannot run a Lambda function's code, so the invoke is recorded at the botocore level (a
`before-call` hook answers it as Lambda's queue does, 202) and the test hands the recorded
payload to the handler, as Lambda would."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from fastapi.testclient import TestClient

import functions.dataset_import.handler as import_function
from tests.aws_fixtures import (
    AWS_BATCH_QUEUE,
    TEST_REGION,
    TEST_TABLE_NAME,
    aws_backend_on_moto,
)
from tests.emulators import S3Emulator, moto_s3_server
from tests.helpers import LambdaContext
from tests.integration.test_seed002 import aws_keys, class_files, start_body
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import JobStatus, platform_job_name
from trainyard.settings import Settings

DATASETS, ARTIFACTS = "seed002-aws-datasets", "seed002-aws-artifacts"
IMPORT_FUNCTION = "trainyard-dataset-import"
SECRETS_PREFIX = "trainyard/"
API_KEY = "ty_seed002_aws_" + "k" * 32
SOURCE_BUCKET = "customer-datasets"


@dataclass
class Invocations:
    """Lambda Invoke calls as they went on the wire; `refuse` makes the next ones fail as a
    throttled Lambda answers."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    refuse: bool = False

    def before_call(self, model: Any, params: dict[str, Any], **kwargs: Any) -> tuple[AWSResponse, Any]:
        self.calls.append(
            {
                "function": params["url_path"].split("/functions/")[1].split("/")[0],
                "invocation_type": params["headers"].get("X-Amz-Invocation-Type"),
                "payload": json.loads(params["body"]),
            }
        )
        if self.refuse:
            error = {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}
            return AWSResponse(params["url"], 429, {}, None), {**error, "ResponseMetadata": {}}
        return AWSResponse(params["url"], 202, {}, None), {"StatusCode": 202, "ResponseMetadata": {}}


@dataclass
class AwsSeed002:
    launcher: str
    services: Services
    client: TestClient
    invocations: Invocations
    source: S3Emulator

    def deliver(self, payload: dict[str, Any]) -> dict[str, Any]:
        """What Lambda does with a queued event: run the function's handler on it."""
        result: dict[str, Any] = import_function.handler(
            payload, LambdaContext(aws_request_id=str(uuid.uuid4()))
        )
        return result

    def secret_names(self) -> list[str]:
        secrets = boto3.client("secretsmanager", region_name=TEST_REGION)
        return [s["Name"] for s in secrets.list_secrets()["SecretList"]]

    def table_text(self) -> str:
        items = boto3.client("dynamodb", region_name=TEST_REGION).scan(TableName=TEST_TABLE_NAME)["Items"]
        return json.dumps(items)

    def job(self, project: str = "teeth") -> Any:
        alias = self.services.store.get_alias("default", "002.project", f"profile-1/{project}")
        assert alias is not None
        return self.services.store.get_job("default", alias.target)


@pytest.fixture(scope="module")
def source() -> Iterator[S3Emulator]:
    with moto_s3_server() as emulator:
        yield emulator


@pytest.fixture(params=["sagemaker", "batch"])
def aws(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: S3Emulator
) -> Iterator[AwsSeed002]:
    launcher: str = request.param
    extra_env = {
        "TRAINYARD_SECRETS_PREFIX": SECRETS_PREFIX,
        "TRAINYARD_DATASET_IMPORT_FUNCTION": IMPORT_FUNCTION,
        # the caller's bucket is on moto's S3 server, which checks the keys
        "TRAINYARD_EXTERNAL_S3_ENDPOINT": source.endpoint,
    }
    invocations = Invocations()
    with aws_backend_on_moto(
        monkeypatch,
        home=tmp_path / "lambda-tmp",
        launcher=launcher,
        datasets_bucket=DATASETS,
        artifacts_bucket=ARTIFACTS,
        extra_env=extra_env,
    ):
        # clients are made from the default session, which copies its hooks into each one
        session = boto3.session.Session()
        session.events.register("before-call.lambda.Invoke", invocations.before_call)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)

        import_function.services.forget()  # the function's own container
        services = bootstrap(Settings())
        services.tenants.ensure_default_key(API_KEY, services.settings.home / "api_key")
        with TestClient(create_app(services)) as client:
            client.headers["Authorization"] = API_KEY  # as the seed's clients send it
            yield AwsSeed002(launcher, services, client, invocations, source)


def put_dataset(source: S3Emulator, folder: str) -> None:
    source.put_files(SOURCE_BUCKET, class_files(f"{folder}/", "split", per_class=3))


def assert_launched(aws: AwsSeed002, job_id: str) -> None:
    name = platform_job_name(job_id)
    if aws.launcher == "sagemaker":
        run = boto3.client("sagemaker", region_name=TEST_REGION).describe_training_job(TrainingJobName=name)
        assert json.loads(run["HyperParameters"]["job_id"]) == job_id
        assert json.loads(run["HyperParameters"]["epochs"]) == 2
    else:
        batch = boto3.client("batch", region_name=TEST_REGION)
        found = batch.list_jobs(jobQueue=AWS_BATCH_QUEUE, filters=[{"name": "JOB_NAME", "values": [name]}])
        assert len(found["jobSummaryList"]) == 1
    manifest = boto3.client("s3", region_name=TEST_REGION).get_object(
        Bucket=ARTIFACTS, Key=f"jobs/{job_id}/input/training/manifest.jsonl"
    )["Body"]
    assert len(manifest.read().splitlines()) == 9  # the downloaded images, snapshotted for the run


def test_the_import_function_downloads_stores_and_launches_and_a_redelivery_is_a_no_op(
    aws: AwsSeed002, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="trainyard")
    folder = f"teeth-{aws.launcher}"
    put_dataset(aws.source, folder)
    body = start_body(container=SOURCE_BUCKET, folder=folder, **aws_keys(aws.source))
    answer = aws.client.post("/starttraining/", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "PENDING"
    assert answer.json()["dataset"] == f"{SOURCE_BUCKET}/{folder}"
    job = aws.job()
    assert job.status is JobStatus.PENDING and job.launch_ref is None
    assert aws.client.get("/statustraining/profile-1/teeth").json()["result"] == "PENDING"

    # one async invoke of the import function, whose payload holds the plan and no credential
    [call] = aws.invocations.calls
    assert call["function"] == IMPORT_FUNCTION and call["invocation_type"] == "Event"
    payload = call["payload"]
    assert payload["job_id"] == job.id and payload["tenant_id"] == "default"
    assert payload["source"] == {"storage_type": "aws", "container": SOURCE_BUCKET, "folder": folder,
                                 "zipped": False}  # fmt: skip
    assert payload["request"]["params"]["epochs"] == 2 and payload["request"]["exports"] == ["onnx"]
    # the credentials wait in Secrets Manager under the job's name
    assert aws.secret_names() == [f"{SECRETS_PREFIX}external/{job.id}"]
    handed_over = boto3.client("secretsmanager", region_name=TEST_REGION).get_secret_value(
        SecretId=f"{SECRETS_PREFIX}external/{job.id}"
    )["SecretString"]
    assert json.loads(handed_over) == aws_keys(aws.source)

    outcome = aws.deliver(payload)
    assert outcome == {"job_id": job.id, "outcome": "ran: the job is DOWNLOADED"}
    assert aws.secret_names() == []  # taken: read, then deleted
    launched = aws.job()
    assert launched.status is JobStatus.DOWNLOADED and launched.launch_ref
    assert launched.error is None
    assert_launched(aws, job.id)
    status = aws.client.get("/statustraining/profile-1/teeth").json()
    assert status["result"] == "DOWNLOADED" and status["epochs"] == 2
    # the dataset is the tenant's, stored in the datasets bucket, and the model points at it
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    [dataset] = aws.client.get("/v1/datasets", headers=bearer).json()["items"]
    assert dataset["name"] == "teeth" and dataset["image_count"] == 9
    stored = boto3.client("s3", region_name=TEST_REGION).list_objects_v2(Bucket=DATASETS)["Contents"]
    assert any(dataset["id"] in item["Key"] for item in stored)
    model = aws.client.get(f"/v1/models/{launched.model_id}", headers=bearer).json()
    assert model["dataset_id"] == dataset["id"]

    # Lambda delivers at least once: the same event again changes nothing and launches nothing
    assert aws.deliver(payload)["outcome"] == "skipped: the job is DOWNLOADED"
    again = aws.job()
    assert (again.status, again.version, again.launch_ref) == (launched.status, launched.version,
                                                               launched.launch_ref)  # fmt: skip
    assert len(aws.client.get("/v1/datasets", headers=bearer).json()["items"]) == 1
    assert aws.secret_names() == []

    # the secret key is nowhere: the table, the answers, the invoke, the logs (Powertools
    # writes to stdout)
    texts = [aws.table_text(), answer.text, json.dumps(status), json.dumps(payload), caplog.text,
             capsys.readouterr().out]  # fmt: skip
    for text in texts:
        assert aws.source.secret_access_key not in text


@pytest.mark.parametrize(
    "case,expected",
    [
        ("wrong_secret", "refused the credentials (SignatureDoesNotMatch)"),
        ("empty_folder", "is empty or does not exist"),
    ],
)
def test_a_failed_import_ends_failed_with_a_message_and_leaves_no_secret(
    aws: AwsSeed002, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], case: str,
    expected: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="trainyard")
    put_dataset(aws.source, "present")
    wrong_secret = "wrong-secret-" + uuid.uuid4().hex
    overrides = {
        "wrong_secret": {"folder": "present", **aws_keys(aws.source), "aws_secret_access_key": wrong_secret},
        "empty_folder": {"folder": "nothing-here", **aws_keys(aws.source)},
    }[case]
    answer = aws.client.post("/starttraining/", json=start_body(container=SOURCE_BUCKET, **overrides))
    assert answer.status_code == 200 and answer.json()["status"] == "PENDING", answer.text
    [call] = aws.invocations.calls

    aws.deliver(call["payload"])
    job = aws.job()
    assert job.status is JobStatus.FAILED and expected in (job.error or ""), job.error
    assert job.launch_ref is None
    status = aws.client.get("/statustraining/profile-1/teeth").json()
    assert status["result"] == "FAILED" and expected in status["message"]
    assert aws.secret_names() == []  # deleted although the import failed
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert aws.client.get("/v1/datasets", headers=bearer).json()["items"] == []  # nothing half-made
    secret = overrides["aws_secret_access_key"]
    for text in (aws.table_text(), answer.text, json.dumps(status), caplog.text, capsys.readouterr().out):
        assert secret not in text


def test_a_retry_that_finds_the_credentials_gone_fails_a_pending_job(aws: AwsSeed002) -> None:
    """A first attempt that died between taking the secret and starting the download (a crash,
    a timeout) leaves the job PENDING with no credentials: the retry fails it, saying why."""
    put_dataset(aws.source, "present")
    body = start_body(container=SOURCE_BUCKET, folder="present", **aws_keys(aws.source))
    assert aws.client.post("/starttraining/", json=body).status_code == 200
    [call] = aws.invocations.calls
    job = aws.job()
    boto3.client("secretsmanager", region_name=TEST_REGION).delete_secret(
        SecretId=f"{SECRETS_PREFIX}external/{job.id}", ForceDeleteWithoutRecovery=True
    )
    assert aws.secret_names() == []

    assert aws.deliver(call["payload"])["outcome"] == "failed: no credentials"
    failed = aws.job()
    assert failed.status is JobStatus.FAILED
    assert "storage credentials were no longer available" in (failed.error or "")
    assert aws.client.get("/statustraining/profile-1/teeth").json()["result"] == "FAILED"


def test_a_cancelled_job_is_left_alone_and_its_secret_removed(aws: AwsSeed002) -> None:
    put_dataset(aws.source, "present")
    body = start_body(container=SOURCE_BUCKET, folder="present", **aws_keys(aws.source))
    assert aws.client.post("/starttraining/", json=body).status_code == 200
    [call] = aws.invocations.calls
    job = aws.job()
    # what POST /v1/jobs/{id}/cancel records (its StopTrainingJob call is one moto lacks)
    assert aws.services.jobs.transition(job.id, JobStatus.CANCELLED) is not None

    assert aws.deliver(call["payload"])["outcome"] == "skipped: the job is CANCELLED"
    assert aws.job().status is JobStatus.CANCELLED and aws.job().launch_ref is None
    assert aws.secret_names() == []


def test_an_invoke_lambda_refuses_answers_503_frees_the_project_and_removes_the_secret(
    aws: AwsSeed002,
) -> None:
    aws.invocations.refuse = True
    body = start_body(container=SOURCE_BUCKET, folder="present", **aws_keys(aws.source))
    refused = aws.client.post("/starttraining/", json=body)
    assert refused.status_code == 503, refused.text
    assert refused.json()["status"] == "FAILED"
    assert "could not be started (TooManyRequestsException)" in refused.json()["message"]
    assert aws.secret_names() == []
    assert aws.client.get("/statustraining/profile-1/teeth").status_code == 404  # the name is free
    # the job that could not start is on record as FAILED, with the reason
    [recorded] = aws.client.get("/v1/jobs", headers={"Authorization": f"Bearer {API_KEY}"}).json()["items"]
    assert recorded["status"] == "FAILED" and "TooManyRequestsException" in recorded["error"]

    aws.invocations.refuse = False
    assert aws.client.post("/starttraining/", json=body).status_code == 200  # a retry goes through
    assert len(aws.secret_names()) == 1


def test_without_an_import_function_the_route_answers_503_and_records_nothing(
    aws: AwsSeed002, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINYARD_DATASET_IMPORT_FUNCTION", "")
    services = bootstrap(Settings())
    with TestClient(create_app(services)) as client:
        body = start_body(container=SOURCE_BUCKET, folder="present", **aws_keys(aws.source))
        refused = client.post("/starttraining/", json=body, headers={"Authorization": API_KEY})
        assert refused.status_code == 503 and refused.json()["status"] == "FAILED"
        assert "TRAINYARD_DATASET_IMPORT_FUNCTION" in refused.json()["message"]
    assert aws.invocations.calls == [] and aws.secret_names() == []
    assert services.store.get_alias("default", "002.project", "profile-1/teeth") is None
    assert services.store.list_jobs("default", 10, None).items == []


def test_the_sample_event_is_the_payload_the_api_sends_and_replays_through_the_handler(
    aws: AwsSeed002,
) -> None:
    """events/dataset_import_plan.json (for `sam local invoke DatasetImportFunction -e …`) has
    the shape of the real payload, and the function runs it: the sample's own parameters, with
    the ids and the source of a job recorded here."""
    sample = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "dataset_import_plan.json").read_text()
    )
    put_dataset(aws.source, "present")
    body = start_body(container=SOURCE_BUCKET, folder="present", **aws_keys(aws.source))
    assert aws.client.post("/starttraining/", json=body).status_code == 200
    [call] = aws.invocations.calls
    payload = call["payload"]
    assert set(sample) == set(payload)
    assert set(sample["request"]) == set(payload["request"])
    assert set(sample["request"]["params"]) == set(payload["request"]["params"])
    assert set(sample["source"]) == set(payload["source"])

    replay = {**sample, "tenant_id": payload["tenant_id"], "job_id": payload["job_id"],
              "source": payload["source"]}  # fmt: skip
    assert aws.deliver(replay)["outcome"] == "ran: the job is DOWNLOADED"
    assert aws.job().launch_ref
