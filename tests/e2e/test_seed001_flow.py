"""Seed 001 (the SLEAP microservice) as its clients drive it: over HTTP against
`python -m trainyard serve`, at the root paths, with no API key (the local stack serves
keyless seed calls as the default tenant). One tiny training (the documented example 1 with
backbone_model "leap", 2 epochs on 8 rendered frames) and one inference on a 6-frame video;
the same model and jobs are visible through the core API with the key."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalStack
from tests.pose_data import synthetic_pose_data

pytestmark = pytest.mark.e2e

VIDEO_FRAMES = 6
TRAINING_CONFIG = {
    "test_fraction": 0.2,
    "num_epochs": 2,
    "learning_rate": 1e-4,
    "backbone_model": "leap",
    "heads_sigma": 1.5,
    "heads_output_stride": 4,
}
HTTP_DATE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def poll(read: Any, done: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        assert time.monotonic() < deadline, f"timed out; last answer {value}"
        time.sleep(1)
    return value


@pytest.fixture(scope="module")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_pose_data(tmp_path_factory.mktemp("seed001"), "7z", frames=8, video_frames=VIDEO_FRAMES)


def test_a_seed_client_trains_and_runs_a_pose_model(
    stack: LocalStack, api: httpx.Client, animal: Path
) -> None:
    with httpx.Client(base_url=stack.url, timeout=120) as seed:  # no Authorization header
        started = seed.post(
            "/api/train-network",
            json={"training_dataset": b64(animal / "dataset.7z"), "training_config": TRAINING_CONFIG},
        )
        assert started.status_code == 200, started.text
        uid = started.json()["model_uid"]
        assert seed.get("/api/learning-stats", params={"model_uid": uid}).json() == {}

        info = poll(
            lambda: seed.get("/api/model-info", params={"model_uid": uid}).json(),
            lambda i: not i["currently_training"],
            600,
        )
        assert {k: info[k] for k in TRAINING_CONFIG} == TRAINING_CONFIG
        assert HTTP_DATE.match(info["started_training_at"]) and HTTP_DATE.match(info["finished_training_at"])
        stats = seed.get("/api/learning-stats", params={"model_uid": uid}).json()
        assert {name: list(values) for name, values in stats.items()} == {
            "loss": ["0", "1"],
            "lr": ["0", "1"],
            "val_loss": ["0", "1"],
        }

        # the core sees the seed's model as one of its own
        models = api.get("/v1/models").json()["items"]
        model = next(m for m in models if m["name"] == f"seed001-{uid}")
        assert model["status"] == "ready" and model["task"] == "pose"

        inference = seed.post(
            "/api/video-inference",
            json={
                "file_name": "rabbit.mp4",
                "model_uid": uid,
                "video_base64": b64(animal / "test_video.mp4"),
            },
        )
        assert inference.status_code == 200, inference.text
        results_id = inference.json()["results_id"]
        assert isinstance(results_id, int)
        results = poll(
            lambda: seed.get(f"/api/video-inference/{results_id}").json(),
            lambda r: r["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"),
            300,
        )
        assert results["status"] == "SUCCEEDED", results
        assert len(results["predictions"]) == VIDEO_FRAMES
        assert seed.get(results["downloads"]["json"]).json()["frames"] == results["predictions"]
        preview = seed.get(results["downloads"]["preview_image"])
        assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
