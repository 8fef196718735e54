"""Acceptance of the spine, end to end through HTTP on the local stack."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
from PIL import Image

from tests.e2e.conftest import HELD_OUT
from tests.helpers import body_json, webhook_receiver
from tests.local_stack import LocalStack, wait_for_job
from trainyard.adapters.local.subprocess_launcher import _pid_alive
from trainyard.services.webhooks import verify

pytestmark = pytest.mark.e2e
EPOCHS = 8
HEAVY_MODULES = ("tensorflow", "keras", "torch", "sleap_nn")


def worker_pid(stack: LocalStack, job_id: str) -> int:
    launch = stack.home / "jobs" / job_id / "launch.json"
    deadline = time.monotonic() + 30
    while not launch.exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return int(json.loads(launch.read_text())["pid"])


def post_training_job(
    api: httpx.Client, dataset_id: str, model_name: str, params: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    body = {
        "type": "train",
        "task": "classification",
        "dataset_id": dataset_id,
        "model_name": model_name,
        "params": params,
        **extra,
    }
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_until_gone(pid: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture(scope="module")
def trained(api: httpx.Client, shapes_dataset: dict[str, Any]) -> dict[str, Any]:
    with webhook_receiver() as receiver:
        params = {
            "backbone": "small_cnn",
            "epochs": EPOCHS,
            "image_size": 32,
            "batch_size": 16,
            "learning_rate": 0.003,
            "seed": 1,
        }
        created = post_training_job(
            api, shapes_dataset["id"], "shapes-cnn", params, description="e2e", webhook_url=receiver.url
        )
        assert created["status"] in ("PENDING", "DOWNLOADING") and created["model_id"]
        job = wait_for_job(api, created["id"], lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
        assert job["status"] == "SUCCEEDED", job
        assert receiver.received.wait(20), "no webhook"
    return {"job": job, "model_id": created["model_id"], "webhooks": receiver.requests}


def test_job_reports_every_epoch(api: httpx.Client, trained: dict[str, Any]) -> None:
    job = trained["job"]
    assert job["current_epoch"] == EPOCHS == job["epochs"]
    assert job["started_at"] and job["finished_at"] and job["error"] is None
    assert job["last_epoch_duration_seconds"] > 0 and 0 <= job["val_accuracy"] <= 1
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    for entry in epochs:
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "lr", "duration_seconds"):
            assert isinstance(entry[key], float), (key, entry)
    assert epochs[-1]["loss"] < epochs[0]["loss"]


def test_predictions_on_held_out_images(api: httpx.Client, trained: dict[str, Any]) -> None:
    model_id = trained["model_id"]
    correct = 0
    for index, (label, data) in enumerate(HELD_OUT):
        if index % 2:
            response = api.post(
                f"/v1/models/{model_id}/predict", files={"file": ("x.png", data)}, data={"top_k": "2"}
            )
        else:
            response = api.post(
                f"/v1/models/{model_id}/predict",
                json={"image_b64": base64.b64encode(data).decode(), "top_k": 2},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_id"] == model_id and len(body["predictions"]) == 2
        correct += body["predictions"][0]["label"] == label
    assert correct / len(HELD_OUT) >= 0.9, f"{correct}/{len(HELD_OUT)}"


def test_model_record_plot_and_exports(api: httpx.Client, trained: dict[str, Any], tmp_path: Path) -> None:
    model = api.get(f"/v1/models/{trained['model_id']}").json()
    assert model["status"] == "ready" and model["classes"] == ["circle", "square", "triangle"]
    assert model["params"]["backbone"] == "small_cnn" and model["params"]["epochs"] == EPOCHS
    assert sorted(model["exports"]) == ["keras", "onnx", "tflite"]
    assert set(model["metrics"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
    plot = Image.open(io.BytesIO(base64.b64decode(model["plot_loss"])))
    assert plot.format == "PNG" and plot.size[0] > 100
    for fmt, magic in (("onnx", None), ("keras", b"PK"), ("tflite", None)):
        response = api.get(f"/v1/models/{trained['model_id']}/exports/{fmt}")
        assert response.status_code == 200 and len(response.content) > 1000
        if magic:
            assert response.content.startswith(magic)
        (tmp_path / f"model.{fmt}").write_bytes(response.content)
    assert b"TFL3" in (tmp_path / "model.tflite").read_bytes()[:16]


def test_downloaded_onnx_predicts_exactly_like_the_service(
    api: httpx.Client, trained: dict[str, Any]
) -> None:
    model_id = trained["model_id"]
    session = onnxruntime.InferenceSession(api.get(f"/v1/models/{model_id}/exports/onnx").content)
    size = session.get_inputs()[0].shape[1]
    classes = api.get(f"/v1/models/{model_id}").json()["classes"]
    for _, data in HELD_OUT[:6]:
        pixels = np.asarray(
            Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32
        )[None]
        local = session.run(None, {session.get_inputs()[0].name: pixels})[0][0]
        served = api.post(
            f"/v1/models/{model_id}/predict",
            files={"file": ("x.png", data)},
            data={"top_k": str(len(classes))},
        ).json()["predictions"]
        for prediction in served:
            assert abs(prediction["score"] - float(local[classes.index(prediction["label"])])) < 1e-6


def test_webhook_on_completion_is_signed(api: httpx.Client, trained: dict[str, Any]) -> None:
    request = trained["webhooks"][0]
    secret = api.get("/v1/webhook-secret").json()["secret"]
    assert verify(secret, request["headers"], request["body"])
    payload = body_json(request)
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == trained["job"]["id"]
    log = api.get(f"/v1/jobs/{trained['job']['id']}/webhooks").json()["items"]
    assert log[0]["status"] == "delivered" and log[0]["attempts"] == 1


def test_api_process_has_not_imported_heavy_frameworks(stack: LocalStack, trained: dict[str, Any]) -> None:
    # The running server, after it served predictions: no framework library is mapped.
    assert stack.process is not None
    maps = Path(f"/proc/{stack.process.pid}/maps").read_text()
    for name in ("libtensorflow", "_pywrap_tensorflow", "libtorch", "sleap"):
        assert name not in maps
    # And by module name, in a fresh interpreter that predicts through the same services.
    script = (
        "import sys, base64\n"
        "from trainyard.bootstrap import bootstrap\n"
        "from trainyard.settings import Settings\n"
        "services = bootstrap(Settings())\n"
        f"data = base64.b64decode({base64.b64encode(HELD_OUT[0][1]).decode()!r})\n"
        f"result = services.models.predict('default', {trained['model_id']!r}, data, {{'top_k': 1}})\n"
        "print(result['predictions'][0]['label'])\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=stack.env(), capture_output=True, text=True, check=True
    )
    label, modules = result.stdout.strip().splitlines()
    assert label in ("circle", "square", "triangle") and modules == "[]"


def test_another_tenant_sees_none_of_it(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any], trained: dict[str, Any]
) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "trainyard", "keys", "create", "--tenant", "other"],
        env=stack.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    other_key = created.split("API key: ")[1].split()[0]
    job_id, model_id, dataset_id = trained["job"]["id"], trained["model_id"], shapes_dataset["id"]
    png = base64.b64encode(HELD_OUT[0][1]).decode()
    with stack.client(other_key) as other:
        for path in (
            f"/v1/datasets/{dataset_id}",
            f"/v1/jobs/{job_id}",
            f"/v1/jobs/{job_id}/metrics",
            f"/v1/jobs/{job_id}/webhooks",
            f"/v1/models/{model_id}",
            f"/v1/models/{model_id}/exports/onnx",
        ):
            assert other.get(path).status_code == 404, path
        assert other.post(f"/v1/models/{model_id}/predict", json={"image_b64": png}).status_code == 404
        assert (
            other.post(
                f"/v1/datasets/{dataset_id}/images", json={"images": [{"image_b64": png, "label": "x"}]}
            ).status_code
            == 404
        )
        assert other.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
        assert (
            other.post(
                "/v1/jobs", json={"type": "train", "dataset_id": dataset_id, "model_name": "steal"}
            ).status_code
            == 404
        )
        assert other.delete(f"/v1/models/{model_id}").status_code == 404
        assert other.delete(f"/v1/datasets/{dataset_id}").status_code == 404
        for listing in ("/v1/datasets", "/v1/jobs", "/v1/models"):
            assert other.get(listing).json()["items"] == []
    # and the owner still has everything
    assert api.get(f"/v1/datasets/{dataset_id}").status_code == 200
    assert api.get(f"/v1/models/{model_id}").json()["status"] == "ready"


def start_long_job(api: httpx.Client, dataset_id: str) -> str:
    params = {"backbone": "small_cnn", "epochs": 500, "image_size": 64, "batch_size": 8}
    job_id: str = post_training_job(api, dataset_id, "long", params)["id"]
    wait_for_job(api, job_id, lambda j: j["status"] == "RUNNING" and j["current_epoch"] >= 1)
    return job_id


def test_cancel_stops_the_worker(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    job_id = start_long_job(api, shapes_dataset["id"])
    pid = worker_pid(stack, job_id)
    assert _pid_alive(pid)
    response = api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    wait_until_gone(pid, 20, "worker still running after cancel")
    time.sleep(1)  # the worker's exit is reported after it dies; it must not change the outcome
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "CANCELLED" and job["finished_at"]
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert api.get(f"/v1/models/{job['model_id']}").json()["status"] == "failed"


def test_killed_worker_fails_the_job_with_a_reason(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    job_id = start_long_job(api, shapes_dataset["id"])
    os.kill(worker_pid(stack, job_id), signal.SIGKILL)
    job = wait_for_job(api, job_id, lambda j: j["status"] == "FAILED", timeout=30)
    assert "SIGKILL" in job["error"]


def test_restart_keeps_datasets_jobs_and_models(stack: LocalStack, trained: dict[str, Any]) -> None:
    with stack.client() as before:
        snapshot = {
            path: before.get(path, params={"limit": 100}).json()["items"]
            for path in ("/v1/datasets", "/v1/jobs", "/v1/models")
        }
    stack.stop()
    stack.start()
    with stack.client() as after:
        for path, items in snapshot.items():
            assert after.get(path, params={"limit": 100}).json()["items"] == items
        label, data = HELD_OUT[0]
        response = after.post(f"/v1/models/{trained['model_id']}/predict", files={"file": ("x.png", data)})
        assert response.status_code == 200


def test_imagenet_weights_missing_fails_the_job_clearly(
    api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    params = {"backbone": "mobilenet_v2", "weights": "imagenet", "epochs": 1, "image_size": 32}
    created = post_training_job(api, shapes_dataset["id"], "pretrained", params)
    job = wait_for_job(api, created["id"], lambda j: j["status"] == "FAILED", timeout=120)
    assert "TRAINYARD_WEIGHTS_DIR" in job["error"] and ".h5" in job["error"], job["error"]


def test_restart_reattaches_to_a_running_worker(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    job_id = start_long_job(api, shapes_dataset["id"])
    pid = worker_pid(stack, job_id)
    stack.stop()
    assert _pid_alive(pid), "stopping the service must not stop training"
    stack.start()
    with stack.client() as after:
        seen = after.get(f"/v1/jobs/{job_id}").json()["current_epoch"]
        wait_for_job(after, job_id, lambda j: j["current_epoch"] >= seen + 2, timeout=120)
        assert after.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "CANCELLED"
    wait_until_gone(pid, 20, "cancel after restart did not stop the worker")


def test_a_worker_that_finished_while_the_service_was_down_is_settled(
    stack: LocalStack, api: httpx.Client, shapes_dataset: dict[str, Any]
) -> None:
    params = {"backbone": "small_cnn", "epochs": 2, "image_size": 32}
    created = post_training_job(api, shapes_dataset["id"], "while-down", params, exports=["onnx"])
    job_id, model_id = created["id"], created["model_id"]
    pid = worker_pid(stack, job_id)
    stack.stop()
    wait_until_gone(pid, 300, "the short job did not finish")
    stack.start()
    with stack.client() as after:
        job = wait_for_job(after, job_id, lambda j: j["status"] == "SUCCEEDED", timeout=30)
        assert job["current_epoch"] == 2
        model = after.get(f"/v1/models/{model_id}").json()
        assert model["status"] == "ready" and model["exports"] == ["onnx"]
        label, data = HELD_OUT[0]
        assert (
            after.post(f"/v1/models/{model_id}/predict", files={"file": ("x.png", data)}).status_code == 200
        )
