"""Property-based tests (hypothesis) of the job state machine, over both JobStore adapters
(SQLite, and DynamoDB on moto). Events are delivered at least once and in any order, so each
example feeds the services a duplicated, shuffled stream of the container's status, epoch and
progress events, and of everything that can end a job: the container's failure event, the
worker's exit, a user's cancellation, the platform's own state changes (SageMaker training job
and Batch job, through PlatformEventsService) and reaper passes (ReaperService, told by the
launcher what the platform says of the run: still running, ended either way, or unknown). The
job is checked against what the stream implies after every event and after a full redelivery.

The rules, as the services implement them: the first event that ends the job decides its
status, error and model, and a terminal status is final. A run the reaper settled (failed as
"worker lost", or settled as the platform reported it) is not revived by a late exit, platform
event, cancellation or progress event: the design has no way back from a terminal status, so a
late success after a reaped failure changes nothing. A reaper pass over a running run, and a
non-terminal platform state (InProgress, RUNNING), change nothing. Status, epoch and progress
never go backwards; each epoch is recorded once; redelivering the whole stream changes nothing.

Example counts are bounded (`EXAMPLES` per adapter) so the suite stays within seconds; the
hypothesis example database is off so no `.hypothesis/` directory is left behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_job_store import ADAPTERS
from tests.helpers import RecordingLauncher, progress, record_job
from trainyard.adapters.local.disk_blobs import DiskBlobStore
from trainyard.adapters.local.event_bus import InProcessEventBus
from trainyard.domain import FORWARD_PATH, Job, JobStatus, ModelStatus, platform_job_name
from trainyard.errors import Conflict
from trainyard.ports import JobStore, LaunchState, LaunchStatus
from trainyard.services.job_events import CONTAINER_STATUSES, MODEL_MANIFEST, JobEventsService
from trainyard.services.jobs import JobService, output_prefix
from trainyard.services.platform_events import PlatformEventsService
from trainyard.services.reaper import ReaperService

EXAMPLES = 40
TENANT = "default"


# An event is a tuple naming what happened: ("status", STATUS), ("epoch", n), ("progress", done),
# ("failed",), ("exit", succeeded), ("cancel",), ("platform", source, native status),
# ("reap", what the platform says of the run). Tuples keep them hashable and easy to shrink.
Event = tuple[Any, ...]

container_events = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(sorted(CONTAINER_STATUSES, key=FORWARD_PATH.index))),
    st.tuples(st.just("epoch"), st.integers(min_value=1, max_value=5)),
    st.tuples(st.just("progress"), st.integers(min_value=0, max_value=6)),
)
terminal_events = st.one_of(
    st.just(("failed",)),
    st.tuples(st.just("exit"), st.booleans()),
    st.just(("cancel",)),
)
# The platform's state changes, terminal or not, and what a reaper pass hears from the platform.
# Each ending one, as (status, error) it leaves the job in; the others change nothing.
PLATFORM_ENDINGS: dict[Event, tuple[JobStatus, str | None]] = {
    ("platform", "aws.sagemaker", "Completed"): (JobStatus.SUCCEEDED, None),
    ("platform", "aws.sagemaker", "Failed"): (JobStatus.FAILED, "training job failed"),
    ("platform", "aws.sagemaker", "Stopped"): (JobStatus.FAILED, "training job stopped"),
    ("platform", "aws.batch", "SUCCEEDED"): (JobStatus.SUCCEEDED, None),
    ("platform", "aws.batch", "FAILED"): (JobStatus.FAILED, "batch job failed"),
    ("reap", LaunchState.SUCCEEDED): (JobStatus.SUCCEEDED, None),
    ("reap", LaunchState.FAILED): (JobStatus.FAILED, "exit code 137"),
    ("reap", LaunchState.UNKNOWN): (JobStatus.FAILED, "worker lost: the platform has no record of this job"),
}
platform_events = st.sampled_from(
    [
        *PLATFORM_ENDINGS,
        ("platform", "aws.sagemaker", "InProgress"),
        ("platform", "aws.batch", "RUNNING"),
        ("reap", LaunchState.RUNNING),
    ]
)


@st.composite
def delivered_streams(draw: st.DrawFn) -> list[Event]:
    """What a run emitted (a few container events, at most a couple of terminal ones, as
    when a worker exits while a user cancels), then at-least-once delivery: some events come
    again, and the whole stream arrives in any order."""
    emitted: list[Event] = draw(st.lists(container_events, max_size=10, unique=True))
    emitted += draw(st.lists(terminal_events, max_size=2, unique=True))
    emitted += draw(st.lists(platform_events, max_size=3, unique=True))
    redelivered = draw(st.lists(st.sampled_from(emitted), max_size=6)) if emitted else []
    return list(draw(st.permutations(emitted + redelivered)))


ENDING_OF: dict[str, Callable[[Event], tuple[JobStatus, str | None]]] = {
    "failed": lambda event: (JobStatus.FAILED, "trainer crashed"),
    "exit": lambda event: (JobStatus.SUCCEEDED, None) if event[1] else (JobStatus.FAILED, "exit code 1"),
    "cancel": lambda event: (JobStatus.CANCELLED, None),
}


def ending(event: Event) -> tuple[JobStatus, str | None] | None:
    """The status and error an event leaves a running job in, when it ends the job."""
    if event[0] in ENDING_OF:
        return ENDING_OF[event[0]](event)
    return PLATFORM_ENDINGS.get(event)


def rank(status: JobStatus) -> int:
    """How far along a status is; every terminal status is furthest."""
    return len(FORWARD_PATH) if status.is_terminal else FORWARD_PATH.index(status)


def expected_ending(stream: list[Event]) -> tuple[JobStatus, str | None] | None:
    """Of the events that end a job, the first delivered wins."""
    return next((found for event in stream if (found := ending(event)) is not None), None)


def expected_status(stream: list[Event]) -> JobStatus:
    """The first ending's status; otherwise the furthest container status."""
    if (found := expected_ending(stream)) is not None:
        return found[0]
    reached = [event[1] for event in stream if event[0] == "status"]
    return max(reached, key=rank, default=JobStatus.PENDING)


def expected_progress(stream: list[Event]) -> int:
    """Progress counts until the job ends; a late progress event never moves a finished job."""
    done = 0
    for event in stream:
        if ending(event) is not None:
            break
        if event[0] == "progress":
            done = max(done, event[1])
    return done


@dataclass
class PlatformLauncher(RecordingLauncher):
    """A RecordingLauncher whose runs the platform describes as the test says (the reaper asks)."""

    run_state: LaunchState = LaunchState.RUNNING

    def describe(self, job_id: str, launch_ref: str | None) -> LaunchStatus:
        reason = "exit code 137" if self.run_state is LaunchState.FAILED else None
        return LaunchStatus(self.run_state, reason)


@dataclass
class Harness:
    store: JobStore
    blobs: DiskBlobStore
    launcher: PlatformLauncher
    jobs: JobService
    events: JobEventsService
    platform: PlatformEventsService
    reaper: ReaperService

    def new_job(self) -> Job:
        job = record_job(self.store, tenant=TENANT)
        # what the trainer writes before it exits successfully: the manifest the exit reads
        manifest = {"classes": ["cat", "dog"], "exports": {}, "metrics": {}}
        self.blobs.put_bytes(f"{self.prefix(job)}{MODEL_MANIFEST}", json.dumps(manifest).encode())
        return job

    @staticmethod
    def prefix(job: Job) -> str:
        return output_prefix(job)  # where the platform's upload of the model dir lands

    def deliver(self, job: Job, event: Event) -> None:
        kind = event[0]
        if kind == "status":
            self.events.handle_progress(progress(job.id, "status", status=event[1].value))
        elif kind == "epoch":
            n = event[1]
            self.events.handle_progress(progress(job.id, "epoch", epoch=n, epochs=5, loss=1.0 / n))
        elif kind == "progress":
            self.events.handle_progress(
                {
                    **progress(job.id, "progress", done=event[1], total=6, unit="frames"),
                    "event_id": f"{job.id}:progress:{event[1]}",
                }
            )
        elif kind == "failed":
            self.events.handle_progress(progress(job.id, "failed", error="trainer crashed"))
        elif kind == "exit":
            self.events.handle_worker_exit(
                {
                    "job_id": job.id,
                    "succeeded": event[1],
                    "reason": None if event[1] else "exit code 1",
                    "model_prefix": self.prefix(job),
                }
            )
        elif kind == "cancel":
            try:
                self.jobs.cancel(TENANT, job.id)
            except Conflict:
                pass  # the job had already ended: the API answers 409, nothing changes
        elif kind == "platform":
            source, status = event[1], event[2]
            if source == "aws.sagemaker":
                detail = {"TrainingJobName": platform_job_name(job.id), "TrainingJobStatus": status}
            else:
                detail = {"jobName": platform_job_name(job.id), "status": status}
            self.platform.handle_state_change(source, detail)
        elif kind == "reap":
            # every unfinished job is stale (stale_seconds=0): the pass asks the platform now
            self.launcher.run_state = event[1]
            self.reaper.run()
        else:
            raise AssertionError(f"unknown event {event}")

    def current(self, job: Job) -> Job:
        found = self.store.get_job(TENANT, job.id)
        assert found is not None
        return found


@pytest.fixture(params=sorted(ADAPTERS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    store = ADAPTERS[request.param](request, tmp_path)
    blobs = DiskBlobStore(tmp_path / "blobs")
    launcher = PlatformLauncher()
    jobs = JobService(store, launcher, InProcessEventBus(), blobs)
    events = JobEventsService(store, blobs, jobs)
    platform = PlatformEventsService(store, launcher, events)
    reaper = ReaperService(store, launcher, platform, stale_seconds=0)
    return Harness(store, blobs, launcher, jobs, events, platform, reaper)


def observable(job: Job) -> dict[str, Any]:
    """The job as a client sees it, minus the bookkeeping every write changes."""
    return job.model_dump(exclude={"version", "updated_at"})


bounded = settings(
    max_examples=EXAMPLES,
    deadline=None,  # moto and SQLite fsyncs vary in speed on a shared machine
    database=None,  # nothing left on disk between runs
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # each example makes its own job
)


@bounded
@given(stream=delivered_streams())
def test_any_delivery_order_ends_where_the_stream_implies(harness: Harness, stream: list[Event]) -> None:
    job = harness.new_job()
    before = harness.current(job)
    for event in stream:
        harness.deliver(job, event)
        after = harness.current(job)
        # never backward, in any field a client watches
        assert rank(after.status) >= rank(before.status)
        if before.status.is_terminal:
            assert after.status is before.status, "a terminal status is final"
        assert after.progress_done >= before.progress_done
        assert after.current_epoch >= before.current_epoch
        # the version counts applied changes: one per event that changed the job, none otherwise
        changed = observable(after) != observable(before)
        assert after.version == before.version + (1 if changed else 0), (event, before, after)
        before = after

    final = harness.current(job)
    assert final.status is expected_status(stream)
    if (found := expected_ending(stream)) is not None:
        assert final.error == found[1], "the first ending decides the error too; later ones change nothing"
    epochs = sorted({event[1] for event in stream if event[0] == "epoch"})
    assert [m.epoch for m in harness.store.list_epochs(job.id)] == epochs, "each epoch recorded once"
    assert final.current_epoch == max(epochs, default=0), "the summary shows the highest epoch"
    if epochs:
        assert final.loss == 1.0 / max(epochs)
    assert final.progress_done == expected_progress(stream)
    if final.status.is_terminal:
        assert final.finished_at is not None
    model = harness.store.get_model(TENANT, job.model_id)
    assert model is not None
    assert model.status is {
        JobStatus.SUCCEEDED: ModelStatus.READY,
        JobStatus.FAILED: ModelStatus.FAILED,
        JobStatus.CANCELLED: ModelStatus.FAILED,
    }.get(final.status, ModelStatus.TRAINING)
    # the worker is stopped once, only for a cancellation that ended the job
    assert harness.launcher.stopped.count(job.id) == (1 if final.status is JobStatus.CANCELLED else 0)
    assert harness.launcher.launched == []  # events are fed by hand; nothing is launched


@bounded
@given(stream=delivered_streams(), redelivery=st.randoms(use_true_random=False))
def test_redelivering_the_whole_stream_changes_nothing(
    harness: Harness, stream: list[Event], redelivery: Any
) -> None:
    job = harness.new_job()
    for event in stream:
        harness.deliver(job, event)
    settled = harness.current(job)
    epochs = harness.store.list_epochs(job.id)
    model = harness.store.get_model(TENANT, job.model_id)
    stops = list(harness.launcher.stopped)

    again = list(stream)
    redelivery.shuffle(again)
    for event in again:  # a cancel in the stream has ended the job, so a second one is a 409
        harness.deliver(job, event)

    assert harness.current(job) == settled, "a redelivered event is applied at most once"
    assert harness.store.list_epochs(job.id) == epochs
    assert harness.store.get_model(TENANT, job.model_id) == model
    assert harness.launcher.stopped == stops


reaper_endings = st.sampled_from([event for event in PLATFORM_ENDINGS if event[0] == "reap"])


@bounded
@given(reaped=reaper_endings, late=delivered_streams())
def test_a_job_the_reaper_settled_stays_settled(harness: Harness, reaped: Event, late: list[Event]) -> None:
    """The reaper ends a run the platform has lost or finished; whatever comes after (a late
    exit, a platform success, a cancellation, progress, another pass) leaves it as settled. Late
    epoch events are still recorded (metrics are never lost: an exit can overtake the last
    epoch's event), each once, and move no status."""
    job = harness.new_job()
    harness.deliver(job, ("status", JobStatus.RUNNING))
    harness.deliver(job, ("epoch", 1))
    harness.deliver(job, reaped)
    settled = harness.current(job)
    status, error = PLATFORM_ENDINGS[reaped]
    assert (settled.status, settled.error) == (status, error)
    model = harness.store.get_model(TENANT, job.model_id)
    assert model is not None

    for event in late:
        harness.deliver(job, event)

    final = harness.current(job)
    settled_fields = {"status", "error", "finished_at", "progress_done", "model_id", "result"}
    assert final.model_dump(include=settled_fields) == settled.model_dump(include=settled_fields)
    late_model = harness.store.get_model(TENANT, job.model_id)
    assert late_model is not None and late_model.status is model.status
    epochs = sorted({1, *(event[1] for event in late if event[0] == "epoch")})
    assert [m.epoch for m in harness.store.list_epochs(job.id)] == epochs, "each epoch recorded once"
    assert job.id not in harness.launcher.stopped, "a late cancellation of an ended job stops nothing"
