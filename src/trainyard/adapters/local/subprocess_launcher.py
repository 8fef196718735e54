"""JobLauncher that runs a container's entrypoint as a subprocess in the container's own
virtualenv, laid out exactly as SageMaker lays out /opt/ml (docs/job-contract.md).

It plays the platform's part too: it forwards the container's progress events to the bus
("Job Progress", as EventBridge would) and, when the process ends, persists the model dir to
the blob store and publishes "Worker Exit" (SageMaker's "Training Job State Change").
Workers run in their own session, so stopping the service does not stop training; on the
next start `reattach` picks running workers up again and settles the ones that ended.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...domain import Job
from ...ports import BlobStore, EventBus, LaunchSpec, LaunchState, LaunchStatus

log = logging.getLogger(__name__)

PROGRESS = "Job Progress"
WORKER_EXIT = "Worker Exit"
# The file a container writes last: a trained model's, or an inference job's results'.
MANIFEST_NAMES = ("trainyard_model.json", "trainyard_results.json")
# The exit code of a worker we re-attached to after a restart cannot be known (it is not our
# child any more); a value no real exit code or signal can take stands for it.
EXIT_UNKNOWN = -1000


@dataclass(frozen=True)
class ContainerCommand:
    """`<python> -m <module> train` in `workdir`, with `pythonpath` (the shared job-contract
    library, containers/jobkit) importable, as the container image has it."""

    python: Path
    workdir: Path
    module: str
    pythonpath: tuple[Path, ...] = ()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it has finished all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


class SubprocessLauncher:
    def __init__(
        self,
        jobs_root: Path,
        blobs: BlobStore,
        bus: EventBus,
        containers: dict[str, ContainerCommand],
        *,
        weights_dir: Path | None = None,
        cancel_grace_seconds: float = 10.0,
        poll_seconds: float = 0.2,
    ) -> None:
        self._jobs_root = jobs_root
        self._blobs = blobs
        self._bus = bus
        self._containers = containers
        self._weights_dir = weights_dir
        self._grace = cancel_grace_seconds
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._watched: set[str] = set()

    def job_dir(self, job_id: str) -> Path:
        return self._jobs_root / job_id

    # --- launching ------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> str:
        job_dir = self.job_dir(spec.job_id)
        launch_file = job_dir / "launch.json"
        if launch_file.exists():  # launched before: same job id, same run (idempotent)
            return f"pid:{json.loads(launch_file.read_text())['pid']}"
        command = self._containers[spec.container]
        self._materialise_inputs(job_dir, spec)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(job_dir)),
            "LANG": "C.UTF-8",
            "SAGEMAKER_BASE_DIR": str(job_dir),
            "SM_MODEL_DIR": str(job_dir / "model"),
            "TRAINYARD_EVENTS_FILE": str(job_dir / "events.jsonl"),
            "PYTHONUNBUFFERED": "1",
        }
        if command.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(str(p.resolve()) for p in command.pythonpath)
        for channel in spec.channels:
            env[f"SM_CHANNEL_{channel.upper()}"] = str(job_dir / "input" / "data" / channel)
        if self._weights_dir is not None:
            env["TRAINYARD_WEIGHTS_DIR"] = str(self._weights_dir)
        with (job_dir / "worker.log").open("ab") as worker_log:
            process = subprocess.Popen(
                [str(command.python), "-m", command.module, "train"],
                cwd=command.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: cancel kills the whole tree
            )
        launch_file.write_text(json.dumps({"pid": process.pid, "model_prefix": spec.model_prefix}))
        self._watch(spec.job_id, process.pid, process.poll)
        return f"pid:{process.pid}"

    def _materialise_inputs(self, job_dir: Path, spec: LaunchSpec) -> None:
        config_dir = job_dir / "input" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "model").mkdir(exist_ok=True)
        (job_dir / "output").mkdir(exist_ok=True)
        (config_dir / "hyperparameters.json").write_text(json.dumps(spec.hyperparameters))
        for channel, files in spec.channels.items():
            channel_dir = job_dir / "input" / "data" / channel
            channel_dir.mkdir(parents=True, exist_ok=True)
            for item in files:
                target = channel_dir / item.relative_path
                target.parent.mkdir(parents=True, exist_ok=True)
                source = self._blobs.local_path(item.blob_key)
                try:  # a snapshot of the dataset as it is now, without copying the bytes
                    os.link(source, target)
                except OSError:
                    target.write_bytes(source.read_bytes())
            for name, text in spec.channel_documents.get(channel, {}).items():
                (channel_dir / name).write_text(text)

    # --- watching -------------------------------------------------------------------------

    def reattach(self, jobs: list[Job]) -> None:
        """After a restart: watch the workers still running, settle those that ended."""
        for job in jobs:
            launch_file = self.job_dir(job.id) / "launch.json"
            if not launch_file.exists():
                continue
            pid = int(json.loads(launch_file.read_text())["pid"])

            def poll(pid: int = pid) -> int | None:
                return None if _pid_alive(pid) else EXIT_UNKNOWN

            self._watch(job.id, pid, poll)

    def _watch(self, job_id: str, pid: int, poll: Callable[[], int | None]) -> None:
        with self._lock:
            if job_id in self._watched:
                return
            self._watched.add(job_id)
        thread = threading.Thread(
            target=self._follow, args=(job_id, poll), name=f"watch-{job_id}", daemon=True
        )
        thread.start()

    def _follow(self, job_id: str, poll: Callable[[], int | None]) -> None:
        events_path = self.job_dir(job_id) / "events.jsonl"
        offset = 0
        try:
            while True:
                returncode = poll()
                offset = self._forward_events(events_path, offset)
                if returncode is not None:
                    self._forward_events(events_path, offset)
                    self._report_exit(job_id, returncode)
                    return
                time.sleep(self._poll)
        except Exception:
            log.exception("watching job %s failed", job_id)
        finally:
            with self._lock:
                self._watched.discard(job_id)

    def _forward_events(self, path: Path, offset: int) -> int:
        if not path.exists():
            return offset
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete, _, _ = chunk.rpartition(b"\n")  # a half-written last line waits
        if not complete:
            return offset
        for line in complete.split(b"\n"):
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("ignoring malformed progress event %r", line[:200])
                continue
            self._bus.publish(PROGRESS, event)
        return offset + len(complete) + 1

    def _outcome(self, job_dir: Path, returncode: int) -> tuple[bool, str | None]:
        """Whether an ended worker succeeded, and if not, why."""
        failure_file = job_dir / "output" / "failure"
        # A reattached worker's exit code is unknown: it succeeded only if it wrote its
        # manifest, which the container does last, and no failure reason.
        wrote_manifest = any((job_dir / "model" / name).exists() for name in MANIFEST_NAMES)
        if returncode in (0, EXIT_UNKNOWN) and wrote_manifest and not failure_file.exists():
            return True, None
        if failure_file.exists() and failure_file.read_text().strip():
            return False, failure_file.read_text().strip().splitlines()[0]
        if returncode == EXIT_UNKNOWN:
            return False, "worker stopped while the service was not running"
        if returncode < 0:
            return False, f"worker killed by signal {signal.Signals(-returncode).name}"
        return False, f"worker exited with code {returncode} (see {job_dir / 'worker.log'})"

    def _report_exit(self, job_id: str, returncode: int) -> None:
        job_dir = self.job_dir(job_id)
        launch = json.loads((job_dir / "launch.json").read_text())
        succeeded, reason = self._outcome(job_dir, returncode)
        if succeeded:
            self.persist_model(job_id, launch["model_prefix"])
        self._bus.publish(
            WORKER_EXIT,
            {
                "job_id": job_id,
                "succeeded": succeeded,
                "reason": reason,
                "model_prefix": launch["model_prefix"],
            },
        )

    def persist_model(self, job_id: str, model_prefix: str) -> None:
        model_dir = self.job_dir(job_id) / "model"
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            self._blobs.put_file(f"{model_prefix}{path.relative_to(model_dir).as_posix()}", path)

    def describe(self, job_id: str, launch_ref: str | None) -> LaunchStatus:
        launch_file = self.job_dir(job_id) / "launch.json"
        if not launch_file.exists():
            return LaunchStatus(LaunchState.UNKNOWN, "no worker was launched for this job")
        if _pid_alive(int(json.loads(launch_file.read_text())["pid"])):
            return LaunchStatus(LaunchState.RUNNING)
        succeeded, reason = self._outcome(self.job_dir(job_id), EXIT_UNKNOWN)
        return LaunchStatus(LaunchState.SUCCEEDED if succeeded else LaunchState.FAILED, reason)

    # --- stopping -------------------------------------------------------------------------

    def stop(self, job_id: str, launch_ref: str | None) -> None:
        launch_file = self.job_dir(job_id) / "launch.json"
        if not launch_file.exists():
            return
        pid = int(json.loads(launch_file.read_text())["pid"])
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return

        def kill_if_still_running() -> None:
            deadline = time.monotonic() + self._grace
            while time.monotonic() < deadline:
                if not _pid_alive(pid):
                    return
                time.sleep(0.1)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        threading.Thread(target=kill_if_still_running, daemon=True).start()
