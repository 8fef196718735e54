"""POST /v1/assistant through the real app (SQLite, files) against a local OpenAI-compatible
server (tests/fake_chat_api.py) that records what it was sent.

The job the questions are about is made the way the API makes one: a dataset uploaded, a job
created by POST /v1/jobs (its launch recorded rather than started: no training is needed to
have a record) and its progress reported through the same events a worker sends, ending in a
failure with a reason. The tests check that the job's record reaches the chat API and the
reply comes back; that another tenant's job is not found; and the refusals: unconfigured (503,
how to configure), the chat API down, slow or broken (502), questions empty or too long
(422), none of them calling the chat API when the request is at fault."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fake_chat_api import ChatServer, chat_server, reply_to
from tests.helpers import RecordingLauncher
from tests.synthetic import class_folder_zip
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, _local_adapters, _wire
from trainyard.services.assistant import EPOCHS_SHOWN_AT_EACH_END, MAX_QUESTION_LENGTH
from trainyard.services.job_events import PROGRESS_SCHEMA
from trainyard.settings import Settings

FAILURE = "ResourceExhaustedError: OOM when allocating tensor with shape [64,224,224,32] at epoch 3"
PARAMS = {"backbone": "small_cnn", "epochs": 5, "image_size": 32, "batch_size": 64, "learning_rate": 0.01}
QUESTION = "Why did my job fail?"


@dataclasses.dataclass
class Stack:
    client: TestClient
    services: Services


@contextmanager
def assistant_stack(home: Path, **settings: Any) -> Iterator[Stack]:
    """The app with the default tenant's key, its launcher recording launches."""
    resolved = Settings(home=home, **settings)
    resolved = resolved.model_copy(update={"home": resolved.home.resolve()})
    services = _wire(resolved, dataclasses.replace(_local_adapters(resolved), launcher=RecordingLauncher()))
    key = services.tenants.ensure_default_key(None, resolved.home / "api_key")
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield Stack(client, services)


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with chat_server() as server:
        yield server


@pytest.fixture
def stack(tmp_path: Path, chat: ChatServer) -> Iterator[Stack]:
    with assistant_stack(tmp_path / "home", chat_api_url=chat.url, chat_model="tiny-chat") as configured:
        yield configured


def report(services: Services, job_id: str, kind: str, number: int, **fields: Any) -> None:
    """A progress event as the trainer container sends it."""
    event = {
        "schema": PROGRESS_SCHEMA,
        "event_id": f"{job_id}-{kind}-{number}",
        "job_id": job_id,
        "kind": kind,
    }
    services.job_events.handle_progress({**event, **fields})


def failed_job(stack: Stack, epochs_before_failing: int = 2) -> dict[str, Any]:
    """A classification job on an uploaded dataset that ran some epochs and then failed."""
    uploaded = stack.client.post(
        "/v1/datasets",
        data={"name": "shapes-for-the-assistant"},
        files={"file": ("shapes.zip", class_folder_zip(4, seed=3), "application/zip")},
    )
    assert uploaded.status_code == 201, uploaded.text
    body = {
        "type": "train",
        "task": "classification",
        "dataset_id": uploaded.json()["id"],
        "model_name": "shapes",
        "params": PARAMS,
    }
    created = stack.client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    report(stack.services, job_id, "status", 0, status="RUNNING")
    for epoch in range(1, epochs_before_failing + 1):
        loss = round(1.5 / epoch, 3)
        report(stack.services, job_id, "epoch", epoch, epoch=epoch, epochs=5, loss=loss, val_loss=loss + 0.2)
    report(stack.services, job_id, "failed", 0, error=FAILURE)
    job = stack.client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "FAILED" and job["error"] == FAILURE
    return dict(job)


def grounding(chat: ChatServer) -> dict[str, Any]:
    """The job record the chat API was given: the JSON closing the system message."""
    (sent,) = chat.requests
    system = sent["body"]["messages"][0]
    assert system["role"] == "system"
    return dict(json.loads(system["content"][system["content"].index("\n{") :]))


def test_the_job_record_reaches_the_chat_api_and_its_reply_comes_back(stack: Stack, chat: ChatServer) -> None:
    job = failed_job(stack)
    response = stack.client.post("/v1/assistant", json={"question": QUESTION, "job_id": job["id"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"answer": reply_to(QUESTION), "job_id": job["id"]}
    (sent,) = chat.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "tiny-chat"
    assert sent["body"]["messages"][-1] == {"role": "user", "content": QUESTION}
    context = grounding(chat)
    assert context["id"] == job["id"] and context["status"] == "FAILED"
    assert context["error"] == FAILURE
    assert context["params"]["batch_size"] == 64 and context["params"]["backbone"] == "small_cnn"
    assert context["epochs"] == 5 and context["current_epoch"] == 2
    epochs = context["epochs_recorded"]
    assert epochs["count"] == 2
    assert [(e["epoch"], e["loss"]) for e in epochs["epochs"]] == [(1, 1.5), (2, 0.75)]
    dataset = context["dataset"]
    assert dataset["name"] == "shapes-for-the-assistant" and dataset["id"] == job["dataset_id"]
    assert dataset["class_count"] == len(dataset["classes"]) >= 2 and dataset["image_count"] > 0


def test_a_long_run_is_summarised_by_its_first_and_last_epochs(stack: Stack, chat: ChatServer) -> None:
    job = failed_job(stack, epochs_before_failing=2 * EPOCHS_SHOWN_AT_EACH_END + 5)
    response = stack.client.post("/v1/assistant", json={"question": QUESTION, "job_id": job["id"]})
    assert response.status_code == 200, response.text
    epochs = grounding(chat)["epochs_recorded"]
    assert epochs["count"] == 2 * EPOCHS_SHOWN_AT_EACH_END + 5
    assert [e["epoch"] for e in epochs["first"]] == list(range(1, EPOCHS_SHOWN_AT_EACH_END + 1))
    assert epochs["last"][-1]["epoch"] == 2 * EPOCHS_SHOWN_AT_EACH_END + 5


def test_a_deleted_dataset_is_said_to_be_gone(stack: Stack, chat: ChatServer) -> None:
    job = failed_job(stack)
    assert stack.client.delete(f"/v1/datasets/{job['dataset_id']}").status_code == 204
    response = stack.client.post("/v1/assistant", json={"question": QUESTION, "job_id": job["id"]})
    assert response.status_code == 200, response.text
    assert "deleted" in grounding(chat)["dataset"]["note"]


def test_without_a_job_the_question_goes_alone(stack: Stack, chat: ChatServer) -> None:
    response = stack.client.post("/v1/assistant", json={"question": "What is a backbone?"})
    assert response.status_code == 200, response.text
    assert response.json() == {"answer": reply_to("What is a backbone?"), "job_id": None}
    (sent,) = chat.requests
    system, user = sent["body"]["messages"]
    assert system["role"] == "system" and "Trainyard" in system["content"] and "{" not in system["content"]
    assert user == {"role": "user", "content": "What is a backbone?"}


def test_another_tenants_job_is_not_found_and_nothing_is_sent(stack: Stack, chat: ChatServer) -> None:
    job = failed_job(stack)
    _, _, other_key = stack.services.tenants.create_tenant("other")
    response = stack.client.post(
        "/v1/assistant",
        json={"question": QUESTION, "job_id": job["id"]},
        headers={"Authorization": f"Bearer {other_key}"},
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    unknown = stack.client.post("/v1/assistant", json={"question": QUESTION, "job_id": "job_missing"})
    assert unknown.status_code == 404
    assert chat.requests == []


def test_no_key_is_401(stack: Stack, chat: ChatServer) -> None:
    response = stack.client.post("/v1/assistant", json={"question": QUESTION}, headers={"Authorization": ""})
    assert response.status_code == 401
    assert chat.requests == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question: must not be empty"),
        ({"question": "q" * (MAX_QUESTION_LENGTH + 1)}, "question"),
        ({}, "question"),
        ({"question": QUESTION, "job_id": ""}, "job_id"),
        ({"question": QUESTION, "temperature": 2}, "temperature"),
    ],
)
def test_bad_questions_are_422_without_calling_the_chat_api(
    stack: Stack, chat: ChatServer, body: dict[str, Any], named: str
) -> None:
    response = stack.client.post("/v1/assistant", json=body)
    assert response.status_code == 422, response.text
    assert named in response.json()["message"]
    assert chat.requests == []


def test_unconfigured_says_how_to_configure_it(tmp_path: Path) -> None:
    with assistant_stack(tmp_path / "home") as unconfigured:
        response = unconfigured.client.post("/v1/assistant", json={"question": QUESTION})
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    message = response.json()["message"]
    assert "TRAINYARD_CHAT_API_URL" in message and "TRAINYARD_CHAT_API_KEY" in message


@pytest.mark.parametrize(
    ("status", "reply", "named"),
    [
        (500, {"error": {"message": "boom"}}, "answered HTTP 500"),
        (200, {"choices": []}, "no choices[0].message.content"),
    ],
)
def test_a_failing_chat_api_is_502_with_the_reason(
    stack: Stack, chat: ChatServer, status: int, reply: Any, named: str
) -> None:
    chat.status, chat.reply = status, reply
    response = stack.client.post("/v1/assistant", json={"question": QUESTION})
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error" and named in response.json()["message"]


def test_a_chat_api_that_is_down_or_too_slow_is_502(tmp_path: Path) -> None:
    with chat_server() as gone:
        url = gone.url  # nothing listens there once the block ends
    with assistant_stack(tmp_path / "down", chat_api_url=url) as down:
        response = down.client.post("/v1/assistant", json={"question": QUESTION})
    assert response.status_code == 502 and "did not answer" in response.json()["message"]
    with (
        chat_server() as slow,
        assistant_stack(tmp_path / "slow", chat_api_url=slow.url, chat_timeout_seconds=0.5) as s,
    ):
        slow.delay_seconds = 2
        response = s.client.post("/v1/assistant", json={"question": QUESTION})
    assert response.status_code == 502
    assert "did not answer (ReadTimeout)" in response.json()["message"]
