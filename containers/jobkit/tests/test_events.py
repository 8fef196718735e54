from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from jobkit.events import (
    EventBridgeSink,
    FileSink,
    ProgressEmitter,
    Status,
    StdoutSink,
    sinks_from_environment,
)


def epoch_fields(epoch: int, **overrides: float | None) -> dict[str, float | int | None]:
    fields: dict[str, float | int | None] = {
        "epoch": epoch, "epochs": 2, "loss": 0.5, "val_loss": 0.6, "accuracy": 0.8,
        "val_accuracy": 0.7, "lr": 0.001, "duration_seconds": 1.5,
    }  # fmt: skip
    fields.update(overrides)
    return fields


def test_file_sink_appends_contract_events_with_deterministic_ids(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "events.jsonl"
    emitter = ProgressEmitter("job_7", [FileSink(path)])
    emitter.status(Status.DOWNLOADING)
    emitter.status(Status.DOWNLOADED, message="10 images")
    emitter.epoch(**epoch_fields(1))  # type: ignore[arg-type]
    emitter.failed("something broke")

    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event_id"] for e in events] == [
        "job_7:status:DOWNLOADING", "job_7:status:DOWNLOADED", "job_7:epoch:1", "job_7:failed",
    ]  # fmt: skip
    for event in events:
        assert event["schema"] == "trainyard.job-progress/1" and event["job_id"] == "job_7"
        assert datetime.fromisoformat(event["time"]).utcoffset() is not None
    assert events[0]["kind"] == "status" and "message" not in events[0]
    assert events[1]["message"] == "10 images"
    assert {k: events[2][k] for k in epoch_fields(1)} == epoch_fields(1)
    assert events[2]["kind"] == "epoch"
    assert events[3] == {**events[3], "kind": "failed", "error": "something broke"}


def test_non_finite_metrics_become_null(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ProgressEmitter("j", [FileSink(path)]).epoch(
        **epoch_fields(1, loss=float("nan"), val_loss=None, accuracy=float("inf"))  # type: ignore[arg-type]
    )
    event = json.loads(path.read_text())  # strict JSON: NaN would not parse back as null
    assert (event["loss"], event["val_loss"], event["accuracy"]) == (None, None, None)


def test_stdout_is_the_sink_when_nothing_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    sinks = sinks_from_environment({})
    assert [type(s) for s in sinks] == [StdoutSink]
    ProgressEmitter("j", sinks).status(Status.RUNNING)
    line = capsys.readouterr().out.strip()
    prefix, _, payload = line.partition(" ")
    assert prefix == "TRAINYARD_EVENT"
    assert json.loads(payload)["event_id"] == "j:status:RUNNING"


def test_environment_selects_file_and_bus() -> None:
    sinks = sinks_from_environment(
        {"TRAINYARD_EVENTS_FILE": "/tmp/e.jsonl", "TRAINYARD_EVENT_BUS_NAME": "trainyard"}
    )
    assert [type(s) for s in sinks] == [FileSink, EventBridgeSink]


def test_eventbridge_sink_puts_the_event_as_detail() -> None:
    client = boto3.client(
        "events", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    emitter = ProgressEmitter(
        "job_9",
        [EventBridgeSink("trainyard-bus", client)],
        clock=lambda: "2026-11-22T00:00:00+00:00",
    )
    expected_detail = {
        "schema": "trainyard.job-progress/1", "event_id": "job_9:status:RUNNING",
        "job_id": "job_9", "time": "2026-11-22T00:00:00+00:00", "kind": "status",
        "status": "RUNNING",
    }  # fmt: skip
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]},
        {
            "Entries": [
                {
                    "Source": "trainyard.container",
                    "DetailType": "Job Progress",
                    "Detail": json.dumps(expected_detail),
                    "EventBusName": "trainyard-bus",
                }
            ]
        },
    )
    with stubber:
        emitter.status(Status.RUNNING)
    stubber.assert_no_pending_responses()


def test_a_failing_sink_is_logged_and_the_others_still_receive(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = boto3.client(
        "events", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "Throttled", "ErrorMessage": "slow"}]},
    )
    path = tmp_path / "events.jsonl"
    emitter = ProgressEmitter("j", [EventBridgeSink("bus", client), FileSink(path)])
    with stubber, caplog.at_level(logging.WARNING):
        emitter.status(Status.EXPORTING)
    assert "could not send event j:status:EXPORTING to EventBridgeSink" in caplog.text
    assert json.loads(path.read_text())["status"] == "EXPORTING"
