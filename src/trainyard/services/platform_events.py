"""What the platform says about a run, turned into the service's own "Worker Exit".

On AWS the terminal signal of a run is the platform's native event ("SageMaker Training Job
State Change", "Batch Job State Change"); the reaper asks the platform directly when no such
event came. Either way the run is settled here, in one place: persist the model dir (the
platform's upload), then hand the same worker-exit record to JobEventsService that the local
launcher publishes. Duplicates are harmless: a finished job ignores later exits.
"""

from __future__ import annotations

import logging
from typing import Any

from ..domain import Job, job_id_from_platform_name
from ..ports import JobLauncher, JobStore
from .job_events import JobEventsService
from .jobs import output_prefix

log = logging.getLogger(__name__)

# native status → (terminal?, succeeded?)
SAGEMAKER_STATUSES = {"Completed": (True, True), "Failed": (True, False), "Stopped": (True, False)}
BATCH_STATUSES = {"SUCCEEDED": (True, True), "FAILED": (True, False)}


class PlatformEventsService:
    def __init__(self, store: JobStore, launcher: JobLauncher, job_events: JobEventsService) -> None:
        self._store = store
        self._launcher = launcher
        self._job_events = job_events

    def handle_state_change(self, source: str, detail: dict[str, Any]) -> None:
        if source == "aws.sagemaker":
            name, status = detail.get("TrainingJobName"), str(detail.get("TrainingJobStatus"))
            terminal, succeeded = SAGEMAKER_STATUSES.get(status, (False, False))
            reason = detail.get("FailureReason") or (f"training job {status.lower()}" if terminal else None)
        elif source == "aws.batch":
            name, status = detail.get("jobName"), str(detail.get("status"))
            terminal, succeeded = BATCH_STATUSES.get(status, (False, False))
            reason = detail.get("statusReason") or (f"batch job {status.lower()}" if terminal else None)
        else:
            log.warning("ignoring a state change from unknown source %s", source)
            return
        job_id = job_id_from_platform_name(name)
        if job_id is None or not terminal:
            return
        job = self._store.get_job_any_tenant(job_id)
        if job is None:
            log.warning("state change for unknown job %s", job_id)
            return
        self.settle(job, succeeded, None if succeeded else str(reason))

    def settle(self, job: Job, succeeded: bool, reason: str | None) -> None:
        if job.status.is_terminal:
            return
        prefix = output_prefix(job)
        if succeeded:
            try:
                self._launcher.persist_model(job.id, prefix)
            except Exception as exc:
                log.exception("persisting the model of job %s failed", job.id)
                succeeded, reason = False, f"model artifacts could not be saved: {exc}"
        self._job_events.handle_worker_exit(
            {"job_id": job.id, "succeeded": succeeded, "reason": reason, "model_prefix": prefix}
        )
