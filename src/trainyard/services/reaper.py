"""The reaper: settles jobs whose terminal event never came.

A job that has not changed for `stale_seconds` is described on the platform; a run that has
ended there is settled exactly as its terminal event would have settled it, and a run the
platform does not know is failed with that reason. On AWS this is the scheduled `reaper`
function; the local stack runs it on a timer too (a worker can vanish without its watcher
seeing it, e.g. when the machine rebooted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from ..domain import utcnow
from ..ports import JobLauncher, JobStore, LaunchState
from .platform_events import PlatformEventsService

log = logging.getLogger(__name__)


@dataclass
class ReaperReport:
    examined: int = 0
    settled: dict[str, str] = field(default_factory=dict)  # job id → what the platform said


class ReaperService:
    def __init__(
        self, store: JobStore, launcher: JobLauncher, platform: PlatformEventsService, stale_seconds: float
    ) -> None:
        self._store = store
        self._launcher = launcher
        self._platform = platform
        self._stale = timedelta(seconds=stale_seconds)

    def run(self) -> ReaperReport:
        report = ReaperReport()
        cutoff = utcnow() - self._stale
        for job in self._store.list_unfinished_jobs():
            if job.updated_at > cutoff:
                continue
            report.examined += 1
            status = self._launcher.describe(job.id, job.launch_ref)
            if status.state is LaunchState.RUNNING:
                continue
            if status.state is LaunchState.UNKNOWN:
                reason = status.reason or "the platform has no record of this job"
                self._platform.settle(job, False, f"worker lost: {reason}")
            else:
                self._platform.settle(job, status.state is LaunchState.SUCCEEDED, status.reason)
            report.settled[job.id] = status.state.value
            log.info("reaper settled job %s: %s (%s)", job.id, status.state.value, status.reason)
        return report
