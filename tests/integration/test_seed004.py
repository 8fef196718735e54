"""Seed 004 (handwritten digits) without training: the canvas predict before any model, the
refusals of every route in the form its page shows, the chat assistant against a local
OpenAI-compatible server, and which seed gets the bare POST /predict.

The training flow itself (a real small_cnn from CSV, then canvases predicted) is in
test_seed004_training.py."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fake_chat_api import chat_server
from tests.synthetic_digits import as_data_url, canvas_png, digit_rows, digits_csv
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.services.digits import EMPTY_DRAWING, MODEL_NAMESPACE, NO_MODEL, PIXELS
from trainyard.services.tenants import DEFAULT_TENANT
from trainyard.settings import Settings

PREFIXES = ("", "/seeds/004")


def nothing_stored(services: Services) -> None:
    store = services.store
    assert store.list_datasets(DEFAULT_TENANT, 100, None).items == []
    assert store.list_jobs(DEFAULT_TENANT, 100, None).items == []
    assert store.list_models(DEFAULT_TENANT, 100, None).items == []
    assert store.list_aliases(DEFAULT_TENANT, MODEL_NAMESPACE) == []
    assert services.blobs.list_keys(f"tenants/{DEFAULT_TENANT}/") == []


# --- POST /predict --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("with_data_prefix", [True, False])
def test_predict_before_any_training_says_to_train(
    client: TestClient, prefix: str, with_data_prefix: bool
) -> None:
    image = as_data_url(canvas_png(4, random.Random(1)), prefix=with_data_prefix)
    response = client.post(f"{prefix}/predict", json={"image": image})
    assert response.status_code == 200
    assert response.json() == {"prediction": NO_MODEL}


@pytest.mark.parametrize("background", ["transparent", "white"])
def test_predict_an_empty_canvas_says_it_is_empty(client: TestClient, background: str) -> None:
    image = as_data_url(canvas_png(None, random.Random(1), background))
    response = client.post("/predict", json={"image": image})
    assert response.status_code == 200
    assert response.json() == {"prediction": EMPTY_DRAWING}


def test_predict_anonymous_call_acts_for_the_default_tenant(services: Services) -> None:
    """The seed's pages send no key: locally such a call is the default tenant's."""
    with TestClient(create_app(services)) as anonymous:
        response = anonymous.post("/predict", json={"image": as_data_url(canvas_png(4, random.Random(1)))})
    assert response.status_code == 200 and response.json() == {"prediction": NO_MODEL}


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({}, 422, "image: required"),
        ({"image": ""}, 422, "image: expected a non-empty base64 string"),
        ({"image": 12}, 422, "image: expected a non-empty base64 string"),
        ({"image": "data:image/png;base64,@@@"}, 422, "image: invalid base64"),
        ({"image": as_data_url(b"not an image at all")}, 422, "image: not a readable image"),
        ('{"image": ', 400, "body is not valid JSON"),
        ("[1, 2]", 400, "body must be a JSON object"),
    ],
)
def test_predict_refusals_answer_in_the_prediction_field(
    client: TestClient, body: object, status: int, named: str
) -> None:
    if isinstance(body, str):
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    else:
        response = client.post("/predict", json=body)
    assert response.status_code == status
    message = response.json()["prediction"]
    assert isinstance(message, str) and named in message


# --- POST /training: every refusal is an HTML message with a 4xx, and nothing is stored -----

ROWS = digit_rows(20, seed=3)
GOOD = digits_csv(ROWS, header=True)


def row_with(cells: dict[int, str]) -> bytes:
    """A CSV of two good rows and a third with some cells replaced."""
    label, pixels = ROWS[2]
    row = [str(label), *map(str, pixels.reshape(-1).tolist())]
    for column, value in cells.items():
        row[column] = value
    return digits_csv(ROWS[:2], header=False) + (",".join(row) + "\n").encode()


def post_training(client: TestClient, file1: bytes | None, file2: bytes | None, epoch: str | None) -> Any:
    files = {
        name: (f"{name}.csv", data, "text/csv")
        for name, data in (("file1", file1), ("file2", file2))
        if data is not None
    }
    data = {"epoch": epoch} if epoch is not None else {}
    return client.post("/training", files=files, data=data)


@pytest.mark.parametrize(
    ("file1", "file2", "epoch", "status", "named"),
    [
        (None, GOOD, "2", 422, "file1: required"),
        (GOOD, None, "2", 422, "file2: required"),
        (GOOD, GOOD, None, 422, "epoch: required"),
        (GOOD, GOOD, "", 422, "epoch: required"),
        (GOOD, GOOD, "douze", 422, "epoch: 'douze' is not an integer"),
        (GOOD, GOOD, "2.5", 422, "epoch: '2.5' is not an integer"),
        (GOOD, GOOD, "0", 422, "epoch: 0 is outside 1-500"),
        (GOOD, GOOD, "501", 422, "epoch: 501 is outside 1-500"),
        (b"", GOOD, "2", 422, "file1: no data rows"),
        (GOOD, b"\n\n", "2", 422, "file2: no data rows"),
        (GOOD, GOOD.split(b"\n")[0] + b"\n", "2", 422, "file2: no data rows"),
        (b"1,2,3\n", GOOD, "2", 422, "file1 line 1: 3 columns"),
        (GOOD + b"5," + b"0," * (PIXELS - 2) + b"0\n", GOOD, "2", 422, f"file1 line 22: {PIXELS} columns"),
        (
            row_with({100: "12.5"}),
            GOOD,
            "2",
            422,
            "file1 line 3, column 101 (pixel 100): '12.5' is not an integer",
        ),
        (row_with({7: "abc"}), GOOD, "2", 422, "file1 line 3, column 8 (pixel 7): 'abc' is not an integer"),
        (
            row_with({50: "1_0"}),
            GOOD,
            "2",
            422,
            "file1 line 3, column 51 (pixel 50): '1_0' is not an integer",
        ),
        (row_with({50: "\uff11"}), GOOD, "2", 422, "column 51 (pixel 50): '\uff11' is not an integer"),
        (row_with({50: "9" * 30}), GOOD, "2", 422, f"column 51 (pixel 50): {'9' * 30} is outside 0-255"),
        (row_with({9: "256"}), GOOD, "2", 422, "file1 line 3, column 10 (pixel 9): 256 is outside 0-255"),
        (row_with({9: "-1"}), GOOD, "2", 422, "file1 line 3, column 10 (pixel 9): -1 is outside 0-255"),
        (row_with({0: "10"}), GOOD, "2", 422, "file1 line 3, column 1 (label): 10 is outside 0-9"),
        (GOOD, row_with({0: "-3"}), "2", 422, "file2 line 3, column 1 (label): -3 is outside 0-9"),
        (GOOD, b"\xff\xfe" + GOOD, "2", 422, "file2: not a UTF-8 text CSV"),
        (
            digits_csv(ROWS[:1] * 5, header=False),
            GOOD,
            "2",
            422,
            "file1: a classifier needs at least 2 classes, found 1",
        ),
        (
            digits_csv(ROWS[:2], header=False),
            GOOD,
            "2",
            422,
            "file2: digits 2, 3, 4, 5, 6, 7, 8, 9 are not in file1",
        ),
    ],
)
def test_training_refusals_are_html_messages_and_store_nothing(
    client: TestClient,
    services: Services,
    file1: bytes | None,
    file2: bytes | None,
    epoch: str | None,
    status: int,
    named: str,
) -> None:
    response = post_training(client, file1, file2, epoch)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith('<p class="error">')
    assert named.replace("'", "&#x27;") in response.text
    nothing_stored(services)


def test_training_needs_a_form(client: TestClient, services: Services) -> None:
    response = client.post("/seeds/004/training", json={"file1": "x", "file2": "y", "epoch": 2})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "multipart/form-data" in response.text
    nothing_stored(services)


def test_training_file_over_the_upload_limit_is_refused(tmp_path: Any) -> None:
    services = bootstrap(Settings(home=tmp_path / "home", max_upload_bytes=2048))
    with TestClient(create_app(services)) as small:
        big = GOOD[:4000]
        response = small.post(
            "/training",
            files={"file1": ("a.csv", big, "text/csv"), "file2": ("b.csv", GOOD[:100], "text/csv")},
            data={"epoch": "1"},
        )
    assert response.status_code == 413
    assert "over the 2048-byte limit" in response.text
    nothing_stored(services)


# --- GET /model: the assistant ----------------------------------------------------------


@contextmanager
def chat_client(tmp_path: Any, **settings: Any) -> Iterator[TestClient]:
    services = bootstrap(Settings(home=tmp_path / "home", **settings))
    with TestClient(create_app(services)) as test_client:
        yield test_client


@pytest.mark.parametrize("prefix", PREFIXES)
def test_model_forwards_the_question_and_answers_the_reply_as_text(tmp_path: Any, prefix: str) -> None:
    with (
        chat_server() as chat,
        chat_client(
            tmp_path, chat_api_url=chat.url, chat_api_key="sk-test", chat_model="tiny-chat"
        ) as test_client,
    ):
        question = "Combien d'epochs faut-il pour MNIST ?"
        response = test_client.get(f"{prefix}/model", params={"question": question})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == f"Réponse à « {question} »"
    (sent,) = chat.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["body"] == {"model": "tiny-chat", "messages": [{"role": "user", "content": question}]}


def test_model_unconfigured_says_how_to_configure_it(client: TestClient) -> None:
    response = client.get("/model", params={"question": "bonjour"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")
    assert "TRAINYARD_CHAT_API_URL" in response.text and "TRAINYARD_CHAT_API_KEY" in response.text


@pytest.mark.parametrize(
    ("status", "reply", "named"),
    [
        (500, {"error": {"message": "boom"}}, "answered HTTP 500"),
        (401, {"error": {"message": "bad key"}}, "answered HTTP 401"),
        (200, {"choices": []}, "no choices[0].message.content"),
        (200, {"choices": [{"message": {"content": None}}]}, "no text"),
    ],
)
def test_model_upstream_errors_are_502(tmp_path: Any, status: int, reply: Any, named: str) -> None:
    with chat_server() as chat, chat_client(tmp_path, chat_api_url=chat.url) as test_client:
        chat.status, chat.reply = status, reply
        response = test_client.get("/model", params={"question": "bonjour"})
    assert response.status_code == 502
    assert named in response.text
    assert "Authorization" not in chat.requests[0]["headers"]  # no key configured: none sent


def test_model_unreachable_chat_api_is_502(tmp_path: Any) -> None:
    with chat_server() as chat:
        url = chat.url  # the server is gone once the block ends
    with chat_client(tmp_path, chat_api_url=url, chat_timeout_seconds=2) as test_client:
        response = test_client.get("/model", params={"question": "bonjour"})
    assert response.status_code == 502
    assert "did not answer" in response.text


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({}, "question: required"),
        ({"question": "  "}, "question: must not be empty"),
        ({"question": "q" * 4001}, "longer than 4000"),
    ],
)
def test_model_bad_questions_are_422_without_calling_the_chat_api(
    tmp_path: Any, query: dict[str, str], named: str
) -> None:
    with chat_server() as chat, chat_client(tmp_path, chat_api_url=chat.url) as test_client:
        response = test_client.get("/model", params=query)
    assert response.status_code == 422
    assert named in response.text
    assert chat.requests == []


# --- routing: the bare /predict ---------------------------------------------------------


def canvas_body() -> dict[str, str]:
    return {"image": as_data_url(canvas_png(1, random.Random(2)))}


def test_root_predict_is_seed_004_by_default(client: TestClient, services: Services) -> None:
    assert services.settings.root_predict == "004"
    assert client.post("/predict", json=canvas_body()).json() == {"prediction": NO_MODEL}


def test_root_predict_goes_to_003_when_set_and_004_keeps_its_prefix(tmp_path: Any) -> None:
    services = bootstrap(Settings(home=tmp_path / "home", root_predict="003"))
    with TestClient(create_app(services)) as test_client:
        at_root = test_client.post("/predict", json=canvas_body())
        under_prefix = test_client.post("/seeds/004/predict", json=canvas_body())
    assert at_root.headers.get("content-type", "").startswith("application/json")
    assert "prediction" not in at_root.json()  # seed 003's answer (or its 404 while 003 has none)
    assert under_prefix.json() == {"prediction": NO_MODEL}
