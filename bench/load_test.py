"""Bounded load test of the local stack on loopback (issue 7 acceptance).

Starts `python -m trainyard serve` on a free port with a temporary TRAINYARD_HOME, then runs
N concurrent clients (threads with httpx) for a fixed time. Each client loops: create a
dataset (a tiny zip), create a job with an Idempotency-Key (a network error is retried once
with the same key), poll the job a few times, then cancel it. At the end it checks: no 5xx and
no unexpected 4xx, and every created job id is listed exactly once in GET /v1/jobs (nothing
lost, nothing duplicated, including the retried creates). It prints requests/s and p50/p99
latency per route.

Jobs are real: the local stack has no launcher that skips training, and shipping a test-only
one in the product was not wanted. So each job is the smallest real one (small_cnn, 32 px,
1 epoch on 4 images) and each client cancels its job after polling, which ends its worker;
the machine still runs many short training subprocesses, which is part of the load.

    .venv/bin/python bench/load_test.py --clients 50 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.synthetic import class_folder_zip  # noqa: E402 (the repo root is put on the path first)

API_KEY = "ty_bench_" + "k" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.created_jobs: list[str] = []

    def call(
        self, client: httpx.Client, route: str, method: str, url: str, **kwargs: object
    ) -> httpx.Response:
        started = time.perf_counter()
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[route].append(elapsed)
            if response.status_code >= 400:
                self.errors.append(f"{route}: {response.status_code} {response.text[:200]}")
        return response


def client_loop(base: str, deadline: float, archive: bytes, recorder: Recorder, polls: int) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        while time.monotonic() < deadline:
            made = recorder.call(
                client,
                "POST /v1/datasets",
                "POST",
                "/v1/datasets",
                data={"name": "bench"},
                files={"file": ("d.zip", archive)},
            )
            if made.status_code != 201:
                continue
            body = {
                "type": "train",
                "dataset_id": made.json()["id"],
                "model_name": "bench",
                "params": {"epochs": 1, "image_size": 32, "batch_size": 2},
            }
            key = {"Idempotency-Key": str(uuid.uuid4())}
            try:
                job = recorder.call(client, "POST /v1/jobs", "POST", "/v1/jobs", json=body, headers=key)
            except httpx.TransportError:  # the answer was lost: the same key cannot make a second job
                job = recorder.call(client, "POST /v1/jobs", "POST", "/v1/jobs", json=body, headers=key)
            if job.status_code != 202:
                continue
            job_id = job.json()["id"]
            with recorder.lock:
                recorder.created_jobs.append(job_id)
            for _ in range(polls):
                recorder.call(client, "GET /v1/jobs/{id}", "GET", f"/v1/jobs/{job_id}")
                time.sleep(0.2)
            recorder.call(client, "POST /v1/jobs/{id}/cancel", "POST", f"/v1/jobs/{job_id}/cancel")


def listed_job_ids(base: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/jobs", params=params).json()
            ids.extend(item["id"] for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return ids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--polls", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "TRAINYARD_HOME": str(root / "home"),
        "TRAINYARD_PORT": str(port),
        "TRAINYARD_API_KEY": API_KEY,
    }
    log = (root / "server.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "trainyard", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        archive = class_folder_zip(2, 1, size=32)
        recorder = Recorder()
        started = time.monotonic()
        deadline = started + args.seconds
        threads = [
            threading.Thread(target=client_loop, args=(base, deadline, archive, recorder, args.polls))
            for _ in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        listed = listed_job_ids(base)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["rm", "-rf", str(root)], check=False)

    total = sum(len(v) for v in recorder.latencies.values())
    print(
        f"clients={args.clients} seconds={args.seconds:g} elapsed={elapsed:.1f}s requests={total} "
        f"throughput={total / elapsed:.1f} req/s"
    )
    print(f"{'route':32} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for route, values in sorted(recorder.latencies.items()):
        p50, p99 = statistics.median(values) * 1000, percentile(values, 0.99) * 1000
        print(f"{route:32} {len(values):6d} {p50:8.1f} {p99:8.1f}")
    created = recorder.created_jobs
    lost = sorted(set(created) - set(listed))
    duplicated = sorted({i for i in listed if listed.count(i) > 1})
    unexpected = sorted(set(listed) - set(created))
    print(
        f"errors={len(recorder.errors)} jobs_created={len(created)} listed={len(listed)} "
        f"lost={len(lost)} duplicated={len(duplicated)} unexpected={len(unexpected)}"
    )
    for error in recorder.errors[:10]:
        print("  ", error)
    return 0 if not (recorder.errors or lost or duplicated or unexpected) else 1


if __name__ == "__main__":
    raise SystemExit(main())
