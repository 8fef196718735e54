"""Property-based tests (hypothesis) of the job state machine, over both JobStore adapters
(SQLite, and DynamoDB on moto). Events are delivered at least once and in any order, so each
example feeds JobEventsService a duplicated, shuffled stream of status, epoch, progress and
terminal events (the container's failure event, the worker's exit, a user's cancellation) and
checks the job against what the stream implies, after every event and after a full
redelivery of the stream.

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
from trainyard.domain import FORWARD_PATH, Job, JobStatus, ModelStatus
from trainyard.errors import Conflict
from trainyard.ports import JobStore
from trainyard.services.job_events import CONTAINER_STATUSES, MODEL_MANIFEST, JobEventsService
from trainyard.services.jobs import JobService

EXAMPLES = 40
TENANT = "default"


# An event is a tuple naming what happened: ("status", STATUS), ("epoch", n), ("progress", done),
# ("failed",), ("exit", succeeded), ("cancel",). Tuples keep them hashable and easy to shrink.
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


@st.composite
def delivered_streams(draw: st.DrawFn) -> list[Event]:
    """What a run emitted (a few container events, at most a couple of terminal ones, as
    when a worker exits while a user cancels), then at-least-once delivery: some events come
    again, and the whole stream arrives in any order."""
    emitted: list[Event] = draw(st.lists(container_events, max_size=10, unique=True))
    emitted += draw(st.lists(terminal_events, max_size=2, unique=True))
    redelivered = draw(st.lists(st.sampled_from(emitted), max_size=6)) if emitted else []
    return list(draw(st.permutations(emitted + redelivered)))


TERMINAL_OF: dict[str, Callable[[Event], JobStatus]] = {
    "failed": lambda event: JobStatus.FAILED,
    "exit": lambda event: JobStatus.SUCCEEDED if event[1] else JobStatus.FAILED,
    "cancel": lambda event: JobStatus.CANCELLED,
}


def rank(status: JobStatus) -> int:
    """How far along a status is; every terminal status is furthest."""
    return len(FORWARD_PATH) if status.is_terminal else FORWARD_PATH.index(status)


def expected_status(stream: list[Event]) -> JobStatus:
    """Terminal events: the first delivered wins. Otherwise the furthest container status."""
    for event in stream:
        if event[0] in TERMINAL_OF:
            return TERMINAL_OF[event[0]](event)
    reached = [event[1] for event in stream if event[0] == "status"]
    return max(reached, key=rank, default=JobStatus.PENDING)


def expected_progress(stream: list[Event]) -> int:
    """Progress counts until the job ends; a late progress event never moves a finished job."""
    done = 0
    for event in stream:
        if event[0] in TERMINAL_OF:
            break
        if event[0] == "progress":
            done = max(done, event[1])
    return done


@dataclass
class Harness:
    store: JobStore
    blobs: DiskBlobStore
    launcher: RecordingLauncher
    jobs: JobService
    events: JobEventsService

    def new_job(self) -> Job:
        job = record_job(self.store, tenant=TENANT)
        # what the trainer writes before it exits successfully: the manifest the exit reads
        manifest = {"classes": ["cat", "dog"], "exports": {}, "metrics": {}}
        self.blobs.put_bytes(f"{self.prefix(job)}{MODEL_MANIFEST}", json.dumps(manifest).encode())
        return job

    @staticmethod
    def prefix(job: Job) -> str:
        return f"models/{job.id}/"

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
    launcher = RecordingLauncher()
    jobs = JobService(store, launcher, InProcessEventBus(), blobs)
    return Harness(store, blobs, launcher, jobs, JobEventsService(store, blobs, jobs))


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
    epochs = sorted({event[1] for event in stream if event[0] == "epoch"})
    assert [m.epoch for m in harness.store.list_epochs(job.id)] == epochs, "each epoch recorded once"
    assert final.current_epoch == max(epochs, default=0), "the summary shows the highest epoch"
    if epochs:
        assert final.loss == 1.0 / max(epochs)
    assert final.progress_done == expected_progress(stream)
    if final.status is JobStatus.FAILED:
        assert final.error in ("trainer crashed", "exit code 1")
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
