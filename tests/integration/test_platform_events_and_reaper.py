"""Native platform state changes and the reaper settle jobs through the same worker-exit path
as the local launcher, persisting the model first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import MODEL_MANIFEST, record_job
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import Job, JobStatus, ModelStatus, platform_job_name
from trainyard.settings import Settings


def finished_run(services: Services, job: Job, *, succeeded: bool, pid: int = 2**22 + 7) -> Path:
    """A job dir as a worker leaves it: launch record, model dir or failure file."""
    job_dir = services.launcher.job_dir(job.id)
    (job_dir / "model").mkdir(parents=True)
    (job_dir / "output").mkdir()
    (job_dir / "launch.json").write_text(json.dumps({"pid": pid, "model_prefix": "unused/"}))
    if succeeded:
        (job_dir / "model" / "trainyard_model.json").write_text(json.dumps(MODEL_MANIFEST))
        (job_dir / "model" / "model.onnx").write_bytes(b"onnx bytes")
    else:
        (job_dir / "output" / "failure").write_text("CUDA out of memory\nmore detail\n")
    return job_dir


def sagemaker_event(job: Job, status: str, reason: str | None = None) -> dict[str, object]:
    detail: dict[str, object] = {"TrainingJobName": platform_job_name(job.id), "TrainingJobStatus": status}
    if reason:
        detail["FailureReason"] = reason
    return detail


def test_sagemaker_completed_persists_the_model_and_succeeds(services: Services) -> None:
    job = record_job(services.store)
    finished_run(services, job, succeeded=True)
    services.platform_events.handle_state_change("aws.sagemaker", sagemaker_event(job, "InProgress"))
    assert services.jobs.get("default", job.id).status is JobStatus.PENDING
    services.platform_events.handle_state_change("aws.sagemaker", sagemaker_event(job, "Completed"))
    services.platform_events.handle_state_change("aws.sagemaker", sagemaker_event(job, "Failed", "late"))
    assert services.jobs.get("default", job.id).status is JobStatus.SUCCEEDED
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.READY and model.exports == ["onnx"]
    assert services.blobs.get_bytes(f"tenants/default/models/{job.model_id}/model.onnx") == b"onnx bytes"


@pytest.mark.parametrize(
    "source,detail_for,expected",
    [
        (
            "aws.sagemaker",
            lambda j: sagemaker_event(j, "Failed", "AlgorithmError: boom"),
            "AlgorithmError: boom",
        ),
        ("aws.sagemaker", lambda j: sagemaker_event(j, "Stopped"), "training job stopped"),
        (
            "aws.batch",
            lambda j: {
                "jobName": platform_job_name(j.id),
                "status": "FAILED",
                "statusReason": "Essential container in task exited",
            },
            "Essential container in task exited",
        ),
    ],
)
def test_platform_failures_fail_the_job_with_the_reason(
    services: Services, source, detail_for, expected
) -> None:  # type: ignore[no-untyped-def]
    job = record_job(services.store)
    services.platform_events.handle_state_change(source, detail_for(job))
    current = services.jobs.get("default", job.id)
    assert current.status is JobStatus.FAILED and current.error == expected


def test_events_for_other_names_are_ignored(services: Services) -> None:
    job = record_job(services.store)
    services.platform_events.handle_state_change(
        "aws.sagemaker", {"TrainingJobName": f"someone-else-{job.id}", "TrainingJobStatus": "Failed"}
    )
    assert services.jobs.get("default", job.id).status is JobStatus.PENDING


def test_success_without_artifacts_fails_with_a_reason(services: Services) -> None:
    job = record_job(services.store)
    services.platform_events.handle_state_change(
        "aws.batch", {"jobName": platform_job_name(job.id), "status": "SUCCEEDED"}
    )
    current = services.jobs.get("default", job.id)
    assert current.status is JobStatus.FAILED and "unreadable" in (current.error or "")


@pytest.fixture
def eager_reaper(tmp_path: Path) -> Services:
    return bootstrap(Settings(home=tmp_path / "home", reaper_stale_seconds=0))


def test_reaper_settles_every_kind_of_lost_job(eager_reaper: Services) -> None:
    services = eager_reaper
    never_launched = record_job(services.store)
    crashed = record_job(services.store)
    finished_run(services, crashed, succeeded=False)
    finished_unseen = record_job(services.store)
    finished_run(services, finished_unseen, succeeded=True)
    still_running = record_job(services.store)
    finished_run(services, still_running, succeeded=False, pid=os.getpid())
    done = record_job(services.store)
    services.jobs.transition(done.id, JobStatus.SUCCEEDED)

    report = services.reaper.run()

    assert report.examined == 4 and set(report.settled) == {never_launched.id, crashed.id, finished_unseen.id}
    get = lambda job: services.jobs.get("default", job.id)  # noqa: E731
    assert get(never_launched).status is JobStatus.FAILED and "worker lost" in (
        get(never_launched).error or ""
    )
    assert get(crashed).status is JobStatus.FAILED and get(crashed).error == "CUDA out of memory"
    assert get(finished_unseen).status is JobStatus.SUCCEEDED
    assert get(still_running).status is JobStatus.PENDING
    assert services.reaper.run().settled == {}  # a second pass finds nothing left to settle


def test_reaper_leaves_recently_updated_jobs_alone(services: Services) -> None:
    job = record_job(services.store)  # default stale threshold: 15 minutes
    assert services.reaper.run().examined == 0
    assert services.jobs.get("default", job.id).status is JobStatus.PENDING
