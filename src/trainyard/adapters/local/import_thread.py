"""ImportRunner of the local stack: the import runs in a daemon thread of the service, which
outlives the request. The credentials never leave this process: they are in the closure the
thread runs, so nothing is handed over and there is nothing to take."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class DaemonThreadImports:
    """A download cut short by a restart leaves its job unlaunched, which start-up fails
    (JobService.settle_unlaunched)."""

    def submit(
        self, job_id: str, plan: dict[str, Any], credentials: dict[str, str], run_here: Callable[[], None]
    ) -> None:
        threading.Thread(target=run_here, name=f"external-dataset-{job_id}", daemon=True).start()

    def take_credentials(self, job_id: str) -> dict[str, str] | None:
        return None
