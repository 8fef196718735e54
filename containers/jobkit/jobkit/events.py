"""Progress events (schema trainyard.job-progress/1) and the sinks the environment selects.

Job code only calls `ProgressEmitter.status/epoch/progress/failed`; where the events go is
decided once, from the environment, as the contract requires:
TRAINYARD_EVENTS_FILE (local launcher), TRAINYARD_EVENT_BUS_NAME (EventBridge), or stdout.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

SCHEMA = "trainyard.job-progress/1"
EVENT_SOURCE = "trainyard.container"
EVENT_DETAIL_TYPE = "Job Progress"
STDOUT_PREFIX = "TRAINYARD_EVENT"


class Status(StrEnum):
    DOWNLOADING = "DOWNLOADING"
    DOWNLOADED = "DOWNLOADED"
    RUNNING = "RUNNING"
    EXPORTING = "EXPORTING"


class EventSink(Protocol):
    def send(self, event: Mapping[str, Any]) -> None: ...


class FileSink:
    """Appends one JSON line per event and flushes, so a follower never sees half an event
    except as an unterminated last line (which the launcher waits on)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, event: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")
            handle.flush()


class StdoutSink:
    def send(self, event: Mapping[str, Any]) -> None:
        print(f"{STDOUT_PREFIX} {json.dumps(event)}", file=sys.stdout, flush=True)


class EventBridgeSink:
    """PutEvents to a bus. boto3 is imported only here, when a bus is configured, so the local
    virtualenv does not need it."""

    def __init__(self, bus_name: str, client: Any | None = None) -> None:
        self.bus_name = bus_name
        self._client = client

    def _events_client(self) -> Any:
        if self._client is None:
            import boto3  # noqa: PLC0415 - optional dependency, only needed on AWS

            self._client = boto3.client("events")
        return self._client

    def send(self, event: Mapping[str, Any]) -> None:
        response = self._events_client().put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": EVENT_DETAIL_TYPE,
                    "Detail": json.dumps(event),
                    "EventBusName": self.bus_name,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise RuntimeError(
                f"EventBridge rejected the event: {entry.get('ErrorCode')} "
                f"{entry.get('ErrorMessage')}"
            )


def sinks_from_environment(environ: Mapping[str, str] | None = None) -> list[EventSink]:
    env = os.environ if environ is None else environ
    sinks: list[EventSink] = []
    if env.get("TRAINYARD_EVENTS_FILE"):
        sinks.append(FileSink(Path(env["TRAINYARD_EVENTS_FILE"])))
    if env.get("TRAINYARD_EVENT_BUS_NAME"):
        sinks.append(EventBridgeSink(env["TRAINYARD_EVENT_BUS_NAME"]))
    return sinks or [StdoutSink()]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json_number(value: float | None) -> float | None:
    """NaN and infinity are not JSON; a diverged loss is reported as null instead."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class ProgressEmitter:
    """Builds contract events with deterministic event_ids and hands them to every sink.

    A sink that fails is logged and skipped: losing a progress event must not fail a
    training job (the platform still learns the outcome from the exit code and model dir).
    """

    def __init__(
        self, job_id: str, sinks: list[EventSink], clock: Callable[[], str] = _now
    ) -> None:
        self.job_id = job_id
        self.sinks = sinks
        self._clock = clock

    @classmethod
    def from_environment(
        cls, job_id: str, environ: Mapping[str, str] | None = None
    ) -> ProgressEmitter:
        return cls(job_id, sinks_from_environment(environ))

    def status(self, status: Status, message: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"status": status.value}
        if message is not None:
            fields["message"] = message
        return self._emit("status", status.value, fields)

    def epoch(
        self,
        *,
        epoch: int,
        epochs: int,
        loss: float | None,
        val_loss: float | None,
        lr: float | None,
        duration_seconds: float,
        accuracy: float | None = None,
        val_accuracy: float | None = None,
        val_map_50: float | None = None,
        val_map_50_95: float | None = None,
    ) -> dict[str, Any]:
        fields = {
            "epoch": epoch,
            "epochs": epochs,
            "loss": _json_number(loss),
            "val_loss": _json_number(val_loss),
            "accuracy": _json_number(accuracy),
            "val_accuracy": _json_number(val_accuracy),
            "lr": _json_number(lr),
            "duration_seconds": _json_number(duration_seconds),
        }
        # Detection's validation mAP; absent (not null) for the tasks that have none.
        for name, value in (("val_map_50", val_map_50), ("val_map_50_95", val_map_50_95)):
            if value is not None:
                fields[name] = _json_number(value)
        return self._emit("epoch", str(epoch), fields)

    def progress(self, done: int, total: int | None, unit: str = "frames") -> dict[str, Any]:
        """Work done so far in a job without epochs (video inference: frames predicted)."""
        return self._emit(
            "progress", str(done), {"done": done, "total": total, "unit": unit}
        )

    def failed(self, error: str) -> dict[str, Any]:
        return self._emit("failed", None, {"error": error})

    def _emit(self, kind: str, discriminator: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        event_id = f"{self.job_id}:{kind}" + (f":{discriminator}" if discriminator else "")
        event = {
            "schema": SCHEMA,
            "event_id": event_id,
            "job_id": self.job_id,
            "time": self._clock(),
            "kind": kind,
            **fields,
        }
        for sink in self.sinks:
            try:
                sink.send(event)
            except Exception:
                log.warning(
                    "could not send event %s to %s", event_id, type(sink).__name__, exc_info=True
                )
        return event
