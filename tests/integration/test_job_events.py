"""Progress events and worker exits, applied through the same bus the launcher uses:
duplicates and out-of-order arrivals leave the job correct."""

from __future__ import annotations

import json
import random

from tests.helpers import progress, record_job
from trainyard.adapters.local.subprocess_launcher import PROGRESS, WORKER_EXIT
from trainyard.bootstrap import Services
from trainyard.domain import JobStatus, JobType, ModelStatus, Task
from trainyard.services.jobs import results_prefix


def epoch(job_id: str, n: int) -> dict[str, object]:
    return progress(
        job_id,
        "epoch",
        epoch=n,
        epochs=3,
        loss=1.0 / n,
        val_loss=1.2 / n,
        accuracy=0.3 * n,
        val_accuracy=0.25 * n,
        lr=0.001,
        duration_seconds=0.5,
    )


def test_in_order_stream(services: Services) -> None:
    job = record_job(services.store)
    for status in ("DOWNLOADING", "DOWNLOADED", "RUNNING"):
        services.bus.publish(PROGRESS, progress(job.id, "status", status=status))
    for n in (1, 2, 3):
        services.bus.publish(PROGRESS, epoch(job.id, n))
    services.bus.publish(PROGRESS, progress(job.id, "status", status="EXPORTING"))
    current = services.jobs.get("default", job.id)
    assert current.status is JobStatus.EXPORTING and current.current_epoch == 3
    assert current.loss == 1.0 / 3 and current.val_accuracy == 0.75
    assert [e.epoch for e in services.store.list_epochs(job.id)] == [1, 2, 3]


def test_duplicated_and_shuffled_stream_ends_in_the_same_state(services: Services) -> None:
    rng = random.Random(7)
    for _ in range(10):
        job = record_job(services.store)
        events = [
            progress(job.id, "status", status=s)
            for s in ("DOWNLOADING", "DOWNLOADED", "RUNNING", "EXPORTING")
        ]
        events += [epoch(job.id, n) for n in (1, 2, 3)]
        events += events[:4]  # at-least-once delivery: some come twice
        rng.shuffle(events)
        for event in events:
            services.bus.publish(PROGRESS, event)
        current = services.jobs.get("default", job.id)
        assert current.status is JobStatus.EXPORTING
        assert current.current_epoch == 3 and current.loss == 1.0 / 3
        assert [e.epoch for e in services.store.list_epochs(job.id)] == [1, 2, 3]


def test_a_late_status_after_failure_does_not_revive_the_job(services: Services) -> None:
    job = record_job(services.store)
    services.bus.publish(PROGRESS, progress(job.id, "status", status="RUNNING"))
    services.bus.publish(PROGRESS, progress(job.id, "failed", error="CUDA out of memory"))
    services.bus.publish(PROGRESS, progress(job.id, "status", status="EXPORTING"))
    services.bus.publish(
        WORKER_EXIT, {"job_id": job.id, "succeeded": False, "reason": "exit 1", "model_prefix": "x/"}
    )
    current = services.jobs.get("default", job.id)
    assert current.status is JobStatus.FAILED and current.error == "CUDA out of memory"
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.FAILED


def test_worker_exit_without_readable_artifacts_fails_the_job(services: Services) -> None:
    job = record_job(services.store)
    services.bus.publish(
        WORKER_EXIT,
        {
            "job_id": job.id,
            "succeeded": True,
            "reason": None,
            "model_prefix": f"tenants/default/models/{job.model_id}/",
        },
    )
    current = services.jobs.get("default", job.id)
    assert current.status is JobStatus.FAILED and "artifacts unreadable" in (current.error or "")


def test_malformed_events_are_dropped_without_harm(services: Services) -> None:
    job = record_job(services.store)
    services.bus.publish(PROGRESS, {"job_id": job.id, "kind": "status", "status": "RUNNING"})  # no schema
    services.bus.publish(
        PROGRESS, progress(job.id, "status", status="SUCCEEDED")
    )  # not the container's to say
    services.bus.publish(PROGRESS, progress("job_unknown", "status", status="RUNNING"))
    assert services.jobs.get("default", job.id).status is JobStatus.PENDING


def record_inference_job(services: Services) -> str:
    """An inference job as the API records it: it runs a model and creates none."""
    trained = record_job(services.store)
    job = trained.model_copy(
        update={"id": "job_infer1", "type": JobType.INFER, "task": Task.POSE, "dataset_id": None, "epochs": 0}
    )
    services.store.create_job(job, None)
    return job.id


def test_frame_progress_only_moves_forward(services: Services) -> None:
    job_id = record_inference_job(services)
    for done in (4, 12, 8, 12, 20):  # a late and a redelivered event among them
        services.bus.publish(PROGRESS, progress(job_id, "progress", done=done, total=20, unit="frames"))
    job = services.jobs.get("default", job_id)
    assert (job.progress_done, job.progress_total, job.progress_unit) == (20, 20, "frames")


def test_an_inference_job_succeeds_with_its_results_manifest(services: Services) -> None:
    job_id = record_inference_job(services)
    prefix = results_prefix("default", job_id)
    manifest = {
        "schema": "trainyard.results/1",
        "files": {"json": "predictions.json", "slp": "predictions.slp", "preview_video": "preview.mp4"},
        "frames": {"total": 20, "predicted": 20, "with_instances": 19},
    }
    services.blobs.put_bytes(prefix + "predictions.json", b"{}")
    services.blobs.put_bytes(prefix + "predictions.slp", b"slp")  # no preview.mp4 was persisted
    services.blobs.put_bytes(prefix + "trainyard_results.json", json.dumps(manifest).encode())

    services.bus.publish(WORKER_EXIT, {"job_id": job_id, "succeeded": True, "model_prefix": prefix})

    job = services.jobs.get("default", job_id)
    assert job.status is JobStatus.SUCCEEDED and job.result is not None
    assert job.result["files"] == {"json": "predictions.json", "slp": "predictions.slp"}
    assert job.result["frames"]["with_instances"] == 19
    model = services.store.get_model("default", job.model_id)
    assert model is not None and model.status is ModelStatus.TRAINING  # the model it ran is untouched


def test_an_inference_job_without_results_fails_and_leaves_its_model_alone(services: Services) -> None:
    job_id = record_inference_job(services)
    services.bus.publish(
        WORKER_EXIT, {"job_id": job_id, "succeeded": True, "model_prefix": results_prefix("default", job_id)}
    )
    job = services.jobs.get("default", job_id)
    assert job.status is JobStatus.FAILED and job.error is not None and "results unreadable" in job.error
    assert services.store.get_model("default", job.model_id).status is ModelStatus.TRAINING  # type: ignore[union-attr]
