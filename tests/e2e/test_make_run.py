"""`make run` itself, as the README tells a new user to run it: it prints the URL and the
API key, serves on TRAINYARD_PORT, keeps a generated key across restarts, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.local_stack import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def run_until_ready(
    home: Path, port: int, extra_env: dict[str, str]
) -> tuple[subprocess.Popen[str], str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRAINYARD_API_KEY"}
    env.update({"TRAINYARD_HOME": str(home), "TRAINYARD_PORT": str(port), **extra_env})
    process = subprocess.Popen(
        ["make", "-s", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    output = ""
    deadline = time.monotonic() + 120
    while "API key:" not in output:
        assert time.monotonic() < deadline and process.poll() is None, output
        output += process.stdout.readline()
    url = re.search(r"running at (http://\S+)", output).group(1)  # type: ignore[union-attr]
    key = re.search(r"API key: (\S+)", output).group(1)  # type: ignore[union-attr]
    assert f"Web console: {url}/console/" in output
    return process, url, key


def interrupt(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal signals the whole group
    assert process.wait(timeout=30) is not None


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_make_run_prints_url_and_a_lasting_key(tmp_path: Path) -> None:
    port = free_port()
    process, url, key = run_until_ready(tmp_path / "home", port, {})
    try:
        assert url == f"http://127.0.0.1:{port}"
        wait_healthy(url)
        assert httpx.get(f"{url}/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        console = httpx.get(f"{url}/console/")
        assert console.status_code == 200 and "<title>Trainyard</title>" in console.text
        assert (tmp_path / "home" / "api_key").stat().st_mode & 0o777 == 0o600
    finally:
        interrupt(process)
    process, _, key_again = run_until_ready(tmp_path / "home", port, {})
    interrupt(process)
    assert key_again == key
    assert (tmp_path / "home" / "api_key").read_text().strip() == key


def test_make_run_uses_the_configured_key(tmp_path: Path) -> None:
    port = free_port()
    process, url, key = run_until_ready(tmp_path / "home", port, {"TRAINYARD_API_KEY": "ty_configured_key"})
    try:
        assert key == "ty_configured_key"
        wait_healthy(url)
        assert (
            httpx.get(f"{url}/v1/jobs", headers={"Authorization": "Bearer ty_configured_key"}).status_code
            == 200
        )
    finally:
        interrupt(process)
