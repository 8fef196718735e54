"""Helpers shared by the tests: a job record without a worker, a launcher that records, a local
HTTP server, and a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trainyard.domain import Job, JobType, Model, Task, new_id
from trainyard.ports import JobStore, LaunchSpec, LaunchState, LaunchStatus


def record_job(store: JobStore, tenant: str = "default", webhook_url: str | None = None) -> Job:
    """A job as the API records it, for tests that drive events by hand (no worker)."""
    job = Job(
        id=new_id("job"),
        tenant_id=tenant,
        type=JobType.TRAIN,
        task=Task.CLASSIFICATION,
        dataset_id="ds_1",
        model_id=new_id("mdl"),
        params={},
        epochs=3,
        webhook_url=webhook_url,
        launch_ref="manual",
    )
    store.create_job(
        job,
        Model(id=job.model_id, tenant_id=tenant, name="m", task=job.task, job_id=job.id, dataset_id="ds_1"),
    )
    return job


@dataclass
class Receiver:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    # status codes to answer, in order; 200 once they run out
    script: list[int] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps http.server's access log out of the test output."""

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_locally(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves `handler` on a free loopback port in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class RecordingLauncher:
    """A JobLauncher that starts nothing: it records launches and stops, and reports every
    launched job as running, so jobs stay where the test leaves them."""

    launched: list[LaunchSpec] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def launch(self, spec: LaunchSpec) -> str:
        self.launched.append(spec)
        return f"recorded-{spec.job_id}"

    def stop(self, job_id: str, launch_ref: str | None) -> None:
        self.stopped.append(job_id)

    def describe(self, job_id: str, launch_ref: str | None) -> LaunchStatus:
        return LaunchStatus(LaunchState.RUNNING)

    def persist_model(self, job_id: str, model_prefix: str) -> None:
        pass


@contextmanager
def webhook_receiver(script: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(url="", script=list(script or []))

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.script.pop(0) if receiver.script else 200
            receiver.requests.append(
                {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "answered": status}
            )
            self.send_response(status)
            self.end_headers()
            if status == 200:
                receiver.received.set()

    with serve_locally(Handler) as base_url:
        receiver.url = f"{base_url}/hook"
        yield receiver


def progress(job_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    discriminator = fields.get("status") or fields.get("epoch") or ""
    return {
        "schema": "trainyard.job-progress/1",
        "event_id": f"{job_id}:{kind}:{discriminator}",
        "job_id": job_id,
        "time": "2026-11-22T00:00:00+00:00",
        "kind": kind,
        **fields,
    }


def body_json(request: dict[str, Any]) -> Any:
    return json.loads(request["body"])


@dataclass
class LambdaContext:
    """The attributes Powertools reads from Lambda's context object."""

    function_name: str = "trainyard-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:trainyard-test"
    aws_request_id: str = "c0ffee00-0000-4000-8000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# A model manifest (trainyard_model.json) as the trainer writes one, for tests that stand in
# for a finished run.
MODEL_MANIFEST = {
    "schema": "trainyard.model/1",
    "task": "classification",
    "classes": ["cat", "dog"],
    "input": {"name": "x", "height": 32, "width": 32},
    "output": {"name": "y"},
    "exports": {"onnx": "model.onnx"},
    "metrics": {"loss": 0.1},
}
