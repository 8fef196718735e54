"""Fault: a launch whose response is lost, on SageMaker and on Batch (moto), through the API and
JobService as the Lambda app builds them.

The platform accepts the create call, then the answer never reaches the service (a read
timeout after the request was sent). The job must still end up launched, on exactly one
platform run found by its deterministic name, and a client that retries the whole request with
the same Idempotency-Key must get the same job and start nothing more."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from fastapi.testclient import TestClient

from tests.aws_fixtures import (
    AWS_BATCH_QUEUE,
    TEST_REGION,
    TEST_TABLE_NAME,
    aws_backend_on_moto,
)
from tests.synthetic import class_folder_zip
from trainyard.adapters.aws.batch_launcher import BatchLauncher
from trainyard.adapters.aws.sagemaker_launcher import SageMakerLauncher
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import platform_job_name
from trainyard.ports import LaunchState
from trainyard.settings import Settings

DATASETS, ARTIFACTS = "trainyard-faults-datasets", "trainyard-faults-artifacts"
API_KEY = "ty_faults_" + "k" * 32
CREATE_OPERATION = {"sagemaker": "sagemaker.CreateTrainingJob", "batch": "batch.SubmitJob"}


@dataclass
class LossyPlatform:
    """Hooks on the launcher's boto3 client: every create call that reaches the platform is
    counted, the first answer is thrown away, and SageMaker's name uniqueness (ResourceInUse,
    which moto does not enforce: it silently replaces the run) is enforced as AWS does."""

    launcher: str
    created: list[str] = field(default_factory=list)  # create calls the platform accepted
    names: list[str] = field(default_factory=list)  # SageMaker training job names taken
    answers_lost: int = 0

    def install(self, client: Any) -> None:
        events = client.meta.events
        operation = CREATE_OPERATION[self.launcher]
        if self.launcher == "sagemaker":
            events.register(f"before-call.{operation}", self._refuse_a_taken_name)
        events.register(f"after-call.{operation}", self._count_and_lose_the_first_answer)

    def _refuse_a_taken_name(self, params: dict[str, Any], **_: Any) -> Any:
        name = json.loads(params["body"])["TrainingJobName"]
        if name not in self.names:
            self.names.append(name)
            return None  # no answer here: the request goes on to the platform, which accepts it
        error = {"Code": "ResourceInUse", "Message": f"Training job names must be unique. {name} exists"}
        return SimpleNamespace(status_code=400), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def _count_and_lose_the_first_answer(self, http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            return  # refused: nothing was created
        self.created.append(model.name)
        if self.answers_lost == 0:
            self.answers_lost += 1
            raise ReadTimeoutError(endpoint_url=f"https://{self.launcher}.{TEST_REGION}.amazonaws.com/")


@dataclass
class AwsApi:
    launcher: str
    services: Services
    api: TestClient
    platform: LossyPlatform

    def platform_runs(self, job_id: str) -> int:
        """How many runs the platform holds under the job's deterministic name."""
        name = platform_job_name(job_id)
        if self.launcher == "sagemaker":
            listed = boto3.client("sagemaker", region_name=TEST_REGION).list_training_jobs(NameContains=name)
            return len([s for s in listed["TrainingJobSummaries"] if s["TrainingJobName"] == name])
        listed = boto3.client("batch", region_name=TEST_REGION).list_jobs(
            jobQueue=AWS_BATCH_QUEUE, filters=[{"name": "JOB_NAME", "values": [name]}]
        )
        return len(listed["jobSummaryList"])


@pytest.fixture(params=["sagemaker", "batch"])
def aws_api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[AwsApi]:
    launcher: str = request.param
    with aws_backend_on_moto(
        monkeypatch,
        home=tmp_path / "lambda-tmp",
        launcher=launcher,
        datasets_bucket=DATASETS,
        artifacts_bucket=ARTIFACTS,
        extra_env={"TRAINYARD_USE_SPOT": "false", "TRAINYARD_IDEMPOTENCY_TABLE": TEST_TABLE_NAME},
    ):
        services = bootstrap(Settings())
        assert isinstance(services.launcher, SageMakerLauncher | BatchLauncher)
        platform = LossyPlatform(launcher)
        platform.install(services.launcher._client)  # the very client the launcher calls
        services.tenants.ensure_default_key(API_KEY, services.settings.home / "api_key")
        with TestClient(create_app(services)) as api:
            api.headers["Authorization"] = f"Bearer {API_KEY}"
            yield AwsApi(launcher, services, api, platform)


def test_a_lost_launch_response_leaves_one_platform_run_and_a_launched_job(aws_api: AwsApi) -> None:
    dataset = aws_api.api.post(
        "/v1/datasets", data={"name": "shapes"}, files={"file": ("shapes.zip", class_folder_zip(3, seed=5))}
    )
    assert dataset.status_code == 201, dataset.text
    body = {"type": "train", "dataset_id": dataset.json()["id"], "model_name": "lost-answer",
            "params": {"epochs": 2, "image_size": 32}}  # fmt: skip
    headers = {"Idempotency-Key": "lost-launch-answer-1"}

    created = aws_api.api.post("/v1/jobs", json=body, headers=headers)

    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert aws_api.platform.answers_lost == 1, "the fault was not injected"
    job = aws_api.api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] in ("PENDING", "DOWNLOADING", "RUNNING") and job["error"] is None, job
    recorded = aws_api.services.store.get_job("default", job_id)
    assert recorded is not None and recorded.launch_ref, "the launch reference was not recorded"
    assert aws_api.services.launcher.describe(job_id, recorded.launch_ref).state is not LaunchState.UNKNOWN

    # The client saw nothing wrong, but a client whose own answer was lost retries the request:
    # the same job comes back and nothing new reaches the platform.
    retried = aws_api.api.post("/v1/jobs", json=body, headers=headers)
    assert retried.status_code in (200, 202) and retried.json()["id"] == job_id

    assert len(aws_api.platform.created) == 1, aws_api.platform.created
    assert aws_api.platform_runs(job_id) == 1
    listed = aws_api.api.get("/v1/jobs", params={"limit": 100}).json()["items"]
    assert [j["id"] for j in listed] == [job_id]
    models = aws_api.api.get("/v1/models", params={"limit": 100}).json()["items"]
    assert [m["id"] for m in models] == [job["model_id"]] and models[0]["status"] == "training"
