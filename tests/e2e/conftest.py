"""The local stack as a user runs it: `python -m trainyard serve` in its own process, real
SQLite, real files, real training subprocesses, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.synthetic import class_folder_zip, labelled_images

API_KEY = "ty_e2e_" + "k" * 32
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStack:
    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRAINYARD_HOME": str(self.home),
            "TRAINYARD_PORT": str(self.port),
            "TRAINYARD_API_KEY": API_KEY,
            "TRAINYARD_WEBHOOK_BACKOFF_SECONDS": "0.2",
        }

    def start(self) -> None:
        log = (self.home.parent / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainyard", "serve"], env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.home.parent / "server.log").read_text()
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("local stack did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C on `make run` sends
            self.process.wait(timeout=30)

    def client(self, key: str = API_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(home=tmp_path_factory.mktemp("stack") / "home")
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def wait_for_job(api: httpx.Client, job_id: str, until: Any, timeout: float = 400) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        assert job["status"] not in TERMINAL or until(job), f"job ended early: {job}"
        assert time.monotonic() < deadline, f"timed out waiting; job is {job}"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def shapes_dataset(api: httpx.Client) -> dict[str, Any]:
    response = api.post(
        "/v1/datasets",
        data={"name": "shapes"},
        files={"file": ("shapes.zip", class_folder_zip(40, seed=11), "application/zip")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


HELD_OUT = labelled_images(12, seed=999)  # never uploaded
