"""Fault tests on the local stack (`python -m trainyard serve`, real training subprocesses):
a worker SIGKILLed mid-training, and a worker that dies while the service is down. Each ends
with the job FAILED with a reason, the epochs it reported kept, its model failed, and nothing
left running."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import pytest

from tests.e2e.test_local_stack import post_training_job, wait_until_gone, worker_pid
from tests.local_stack import LocalStack, wait_for_job
from trainyard.adapters.local.subprocess_launcher import _pid_alive

pytestmark = pytest.mark.e2e
EPOCHS = 300  # far more than the test waits for: the kill always lands between the first and the last


def start_training(api: httpx.Client, dataset_id: str, name: str) -> str:
    params = {"backbone": "small_cnn", "epochs": EPOCHS, "image_size": 32, "batch_size": 8}
    job_id: str = post_training_job(api, dataset_id, name, params)["id"]
    wait_for_job(api, job_id, lambda j: j["status"] == "RUNNING" and j["current_epoch"] >= 2, timeout=180)
    return job_id


def assert_failed_keeping_its_epochs(api: httpx.Client, job: dict[str, Any], seen: int, reason: str) -> None:
    assert job["status"] == "FAILED" and reason in (job["error"] or ""), job
    assert job["finished_at"] and seen <= job["current_epoch"] < EPOCHS
    epochs = [e["epoch"] for e in api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]]
    assert epochs == list(range(1, job["current_epoch"] + 1)), epochs
    assert api.get(f"/v1/models/{job['model_id']}").json()["status"] == "failed"


def test_sigkill_mid_training_fails_the_job_and_keeps_its_epochs(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    job_id = start_training(api, shapes_dataset["id"], "killed-mid-epoch")
    pid = worker_pid(stack, job_id)
    seen = api.get(f"/v1/jobs/{job_id}").json()["current_epoch"]
    os.kill(pid, signal.SIGKILL)

    job = wait_for_job(api, job_id, lambda j: j["status"] == "FAILED", timeout=30)

    assert_failed_keeping_its_epochs(api, job, seen, "SIGKILL")
    time.sleep(1)  # nothing arrives after the end: no revived status, no further epoch
    assert api.get(f"/v1/jobs/{job_id}").json() == job


def test_a_worker_that_died_while_the_service_was_down_is_reconciled_to_failed(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    job_id = start_training(api, shapes_dataset["id"], "died-while-down")
    pid = worker_pid(stack, job_id)
    stack.stop()
    assert _pid_alive(pid), "stopping the service must not stop training"
    os.killpg(pid, signal.SIGKILL)  # the worker (its whole process group) dies with nobody watching
    wait_until_gone(pid, 20, "the killed worker is still running")
    stack.start()

    with stack.client() as after:
        recorded = after.get(f"/v1/jobs/{job_id}").json()
        job = wait_for_job(after, job_id, lambda j: j["status"] == "FAILED", timeout=30)
        # every epoch the worker wrote before it died is recovered from its events file
        assert_failed_keeping_its_epochs(after, job, recorded["current_epoch"], "worker stopped")
