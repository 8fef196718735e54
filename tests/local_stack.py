"""The local stack as a user runs it: `python -m trainyard serve` in its own process, on a free
port, with its own TRAINYARD_HOME; its output goes to server.log beside that home."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

API_KEY = "ty_e2e_" + "k" * 32
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStack:
    home: Path
    port: int = field(default_factory=free_port)
    api_key: str = API_KEY
    extra_env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "trainyard", "serve"])
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home.parent / "server.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRAINYARD_HOME": str(self.home),
            "TRAINYARD_PORT": str(self.port),
            "TRAINYARD_API_KEY": self.api_key,
            "TRAINYARD_WEBHOOK_BACKOFF_SECONDS": "0.2",
            **self.extra_env,
        }

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
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

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key or self.api_key}"}, timeout=60
        )


def wait_for_job(
    api: httpx.Client, job_id: str, until: Any = lambda job: job["status"] in TERMINAL, timeout: float = 400
) -> dict[str, Any]:
    """Poll GET /v1/jobs/<id> until `until(job)` (by default: the job has ended) and return the
    job; fails when the job ends without meeting `until`, or when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        assert job["status"] not in TERMINAL, f"job ended early: {job}"
        assert time.monotonic() < deadline, f"timed out waiting; job is {job}"
        time.sleep(0.5)
