"""The coreml, torch and pytorchmobile exports through the API: a real (tiny) training job in
the trainer's subprocess makes them, the model lists them, and the download route serves
each one; the downloaded TorchScript and lite-interpreter files are loaded back with torch
in the trainer's own virtualenv (the service never imports torch). Unknown formats are 422
before anything is recorded; a format the model was not trained with is 404."""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.synthetic import class_folder_zip
from tests.synthetic_detection import coco_archive

TRAINER_DIR = Path(__file__).resolve().parents[2] / "containers" / "trainer"
EXTRA = ["coreml", "torch", "pytorchmobile"]


def wait_for_job(client: TestClient, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def run_in_trainer_venv(script: str, *args: str) -> str:
    result = subprocess.run(
        [str(TRAINER_DIR / ".venv" / "bin" / "python"), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


# Loads the file given and runs one 32-px image through it; prints the output's shape and sum.
LOAD_AND_RUN = """
import json, sys, torch
from torch.jit.mobile import _load_for_lite_interpreter
path = sys.argv[1]
module = _load_for_lite_interpreter(path) if path.endswith(".ptl") else torch.jit.load(path)
out = module(torch.full((1, 32, 32, 3), 128.0))
print(json.dumps({"shape": list(out.shape), "sum": float(out.sum())}))
"""


def test_extra_formats_are_made_listed_and_downloadable(client: TestClient, tmp_path: Path) -> None:
    dataset = client.post(
        "/v1/datasets", data={"name": "shapes"}, files={"file": ("d.zip", class_folder_zip(4, 3, size=32))}
    ).json()
    created = client.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "classification",
            "dataset_id": dataset["id"],
            "model_name": "exports",
            "params": {"epochs": 1, "image_size": 32, "batch_size": 8, "seed": 3},
            "exports": EXTRA,
        },
    )
    assert created.status_code == 202, created.text
    job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "SUCCEEDED", job
    model_id = created.json()["model_id"]
    model = client.get(f"/v1/models/{model_id}").json()
    assert sorted(model["exports"]) == sorted([*EXTRA, "onnx"])
    classes = model["classes"]

    coreml = client.get(f"/v1/models/{model_id}/exports/coreml")
    assert coreml.status_code == 200 and coreml.headers["content-type"] == "application/zip"
    assert f"{model_id}-model.mlpackage.zip" in coreml.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(coreml.content)) as package:
        names = package.namelist()
        assert "model.mlpackage/Manifest.json" in names
        assert any(name.endswith("/model.mlmodel") for name in names)
        assert any(name.endswith("/weight.bin") for name in names)
        json.loads(package.read("model.mlpackage/Manifest.json"))  # a real package manifest

    for fmt, suffix in (("torch", ".pt"), ("pytorchmobile", ".ptl")):
        response = client.get(f"/v1/models/{model_id}/exports/{fmt}")
        assert response.status_code == 200, response.text
        assert f"{model_id}-model{suffix}" in response.headers["content-disposition"]
        downloaded = tmp_path / f"model{suffix}"
        downloaded.write_bytes(response.content)
        ran = json.loads(run_in_trainer_venv(LOAD_AND_RUN, str(downloaded)))
        assert ran["shape"] == [1, len(classes)]
        assert abs(ran["sum"] - 1.0) < 1e-4  # softmax probabilities

    # not asked for, so not made, and said so
    missing = client.get(f"/v1/models/{model_id}/exports/tflite")
    assert missing.status_code == 404 and "no tflite export" in missing.json()["message"]


def test_unknown_export_formats_are_refused_before_anything_is_recorded(client: TestClient) -> None:
    datasets = {
        "classification": client.post(
            "/v1/datasets", data={"name": "c"}, files={"file": ("c.zip", class_folder_zip(2, 1))}
        ).json()["id"],
        "detection": client.post(
            "/v1/datasets",
            data={"name": "d", "task": "detection"},
            files={"file": ("d.zip", coco_archive(4, width=64, height=64))},
        ).json()["id"],
    }
    for task, dataset_id in datasets.items():
        response = client.post(
            "/v1/jobs",
            json={
                "type": "train",
                "task": task,
                "dataset_id": dataset_id,
                "model_name": "m",
                "exports": ["coreml", "mlmodel"],
            },
        )
        assert response.status_code == 422, response.text
        message = response.json()["message"]
        assert "mlmodel" in message and "pytorchmobile" in message  # names the bad one and the choices
    assert client.get("/v1/jobs").json()["items"] == []
    assert client.get("/v1/models").json()["items"] == []
