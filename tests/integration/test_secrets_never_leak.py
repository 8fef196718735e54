"""Secrets never leak: a full local job through `python -m trainyard serve` (its own process,
logging at DEBUG), with a registered webhook endpoint and a seed 002 training that carries S3
credentials, then every log and every file the stack wrote is searched for the secrets.

Searched: the server's stdout/stderr (service, uvicorn, httpx and botocore logging at DEBUG),
each worker's worker.log and events.jsonl, the SQLite database and every other file under
TRAINYARD_HOME (secrets.json included: it holds ciphertext only; its key file secrets.key is
the one file left out) — and what the webhook receiver got. Searched for: the API key, the
Authorization header value, the endpoint's whsec_ secret (and its key material alone), the
tenant webhook secret, the S3 secret key."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import stat
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import Receiver, webhook_receiver
from tests.local_stack import LocalStack, free_port, wait_for_job
from tests.synthetic import class_folder_zip

pytestmark = pytest.mark.e2e


# The server, run with the root logger at DEBUG: `serve` itself configures INFO, and
# basicConfig is a no-op once a handler exists, so this one wins.
DEBUG_SERVE = (
    "import logging, sys;"
    "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s: %(message)s');"
    "from trainyard.cli import main;"
    "sys.exit(main(['serve']))"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One full run; yields the stack (stopped, so every log is flushed), the secrets it was
    given or handed out, and what the receiver got."""
    root = tmp_path_factory.mktemp("leak")
    api_key = "ty_" + secrets.token_urlsafe(32)
    s3_secret = "S3SECRET" + secrets.token_hex(16)
    # nothing listens there: seed 002's import fails after the credentials were used
    stack = LocalStack(
        home=root / "home",
        api_key=api_key,
        extra_env={"TRAINYARD_EXTERNAL_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
        command=[sys.executable, "-c", DEBUG_SERVE],
    )
    stack.start()
    try:
        with webhook_receiver() as receiver, stack.client() as api:
            found = exercise(api, receiver, s3_secret)
            found["received"] = list(receiver.requests)
    finally:
        stack.stop()
    yield {"stack": stack, "api_key": api_key, "s3_secret": s3_secret, **found}


def exercise(api: httpx.Client, receiver: Receiver, s3_secret: str) -> dict[str, Any]:
    endpoint = api.post("/v1/webhook-endpoints", json={"url": receiver.url})
    assert endpoint.status_code == 201, endpoint.text
    endpoint_secret = endpoint.json()["secret"]
    assert endpoint_secret.startswith("whsec_")
    tenant_secret = api.get("/v1/webhook-secret").json()["secret"]

    dataset = api.post(
        "/v1/datasets",
        data={"name": "leak-shapes"},
        files={"file": ("shapes.zip", class_folder_zip(6, seed=3, size=32), "application/zip")},
    )
    assert dataset.status_code == 201, dataset.text
    created = api.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "classification",
            "dataset_id": dataset.json()["id"],
            "model_name": "leak-cnn",
            "params": {"backbone": "small_cnn", "epochs": 1, "image_size": 32, "batch_size": 8},
            "webhook_url": receiver.url,
        },
    )
    assert created.status_code == 202, created.text

    seed002 = api.post(
        "/starttraining/",
        json={
            "profile_id": "leak",
            "project_name": "creds",
            "epochs": 2,
            "image_size": 32,
            "batch_size": 8,
            "export": ["onnx"],
            "model_type": "classification",
            "storage_type": "aws",
            "container": "datasets",
            "folder": "teeth",
            "zipped": False,
            "aws_access_key_id": "AKIALEAKTEST00000000",
            "aws_secret_access_key": s3_secret,
        },
    )
    assert seed002.status_code < 300, seed002.text
    assert s3_secret not in seed002.text

    job = wait_for_job(api, created.json()["id"], timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert receiver.received.wait(30), "the webhook never arrived"
    deadline = time.monotonic() + 120
    while True:  # seed 002's import against the dead endpoint ends FAILED
        status = api.get("/statustraining/leak/creds")
        if "FAILED" in status.text.upper() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "FAILED" in status.text.upper(), status.text
    assert s3_secret not in status.text
    deliveries = api.get(f"/v1/jobs/{job['id']}/webhooks").json()["items"]
    assert deliveries and deliveries[0]["status"] == "delivered", deliveries
    return {
        "job": job,
        "endpoint_secret": endpoint_secret,
        "tenant_secret": tenant_secret,
        "listed_endpoints": api.get("/v1/webhook-endpoints").text,
    }


def needles(run: dict[str, Any]) -> dict[str, bytes]:
    found = {
        "API key": run["api_key"],
        "Authorization header value": f"Bearer {run['api_key']}",
        "endpoint webhook secret": run["endpoint_secret"],
        # the key material alone, in case something logs it without its prefix
        "endpoint secret key material": run["endpoint_secret"].removeprefix("whsec_"),
        "tenant webhook secret": run["tenant_secret"].removeprefix("whsec_"),
        "S3 secret access key": run["s3_secret"],
    }
    return {name: value.encode() for name, value in found.items()}


def test_no_log_and_no_stored_file_holds_a_secret(run: dict[str, Any]) -> None:
    stack: LocalStack = run["stack"]
    output = stack.log.read_bytes()
    # The one line a server prints the key on is the startup banner `make run` must show the
    # person who started it (not a log record); it is there once, and taken out of the search.
    banner = f"API key: {run['api_key']}  (from TRAINYARD_API_KEY)\n".encode()
    assert output.count(banner) == 1
    searched = {"server stdout/stderr": output.replace(banner, b"")}
    for path in sorted(stack.home.rglob("*")):
        if path.is_file() and path.name != "secrets.key":
            searched[str(path.relative_to(stack.home))] = path.read_bytes()
    names = set(searched)
    # the places a leak would most likely land were really there and really searched
    assert any(n.endswith("worker.log") for n in names) and any(n.endswith("events.jsonl") for n in names)
    assert any(n.endswith(".db") or n.endswith(".sqlite") for n in names), names
    assert b"DEBUG" in searched["server stdout/stderr"]  # logging really ran at DEBUG
    for index, request in enumerate(run["received"]):
        searched[f"webhook request {index}"] = repr(request).encode()
    leaks = [
        f"{what} in {where}"
        for where, content in searched.items()
        for what, needle in needles(run).items()
        if needle in content
    ]
    assert leaks == []


def test_secrets_are_never_returned_by_listing(run: dict[str, Any]) -> None:
    assert run["endpoint_secret"] not in run["listed_endpoints"]
    assert run["endpoint_secret"].removeprefix("whsec_") not in run["listed_endpoints"]


def test_the_secrets_file_is_owner_only_and_encrypted(run: dict[str, Any]) -> None:
    home = run["stack"].home
    for path in (home / "secrets.json", home / "secrets.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = json.loads((home / "secrets.json").read_text())
    assert tokens and all(token.startswith("gAAAAA") for token in tokens.values())  # Fernet tokens


def test_api_keys_are_stored_only_hashed(run: dict[str, Any]) -> None:
    databases = [p for p in run["stack"].home.rglob("*") if p.suffix in (".db", ".sqlite")]
    assert databases
    key_hash = hashlib.sha256(run["api_key"].encode()).hexdigest()
    hashes = []
    for database in databases:
        with sqlite3.connect(database) as connection:
            tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in connection.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the DB
                    text = repr(row)
                    assert run["api_key"] not in text, table
                    if key_hash in text:
                        hashes.append(table)
    assert hashes, "the key's SHA-256 is in no table"
