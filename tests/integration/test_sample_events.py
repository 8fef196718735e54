"""The files in events/ are what `sam local invoke -e` uses; the tests replay them too."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import LambdaContext, record_job
from trainyard.adapters.local.subprocess_launcher import PROGRESS
from trainyard.bootstrap import Services
from trainyard.domain import JobStatus

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, object]:
    return dict(json.loads((EVENTS / name).read_text()))


def test_container_progress_samples_apply(services: Services) -> None:
    job = record_job(services.store)
    for name in (
        "container_progress_status_running.json",
        "container_progress_epoch.json",
        "container_progress_failed.json",
    ):
        services.bus.publish(PROGRESS, {**load(name), "job_id": job.id})
    current = services.jobs.get("default", job.id)
    assert current.status is JobStatus.FAILED and current.current_epoch == 1
    assert current.error == "ImageNet weights for mobilenet_v2 are not installed"


def test_api_gateway_samples_through_the_lambda_handler(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRAINYARD_HOME", str(settings.home))
    from functions.api import handler as module

    module._handler = None
    health = module.handler(load("apigw_http_health.json"), LambdaContext())
    assert health["statusCode"] == 200 and json.loads(health["body"])["status"] == "ok"
    denied = module.handler(load("apigw_http_list_jobs_unauthorized.json"), LambdaContext())
    assert denied["statusCode"] == 401 and json.loads(denied["body"])["error"] == "unauthorized"
    module._handler = None
