"""Idempotency-Key on the creating routes (api/idempotency.py), through the real app, SQLite
store and files: the same key and body answer the first result and store nothing new; another
body is a 422 in the route's error form; no key behaves as before; keys are per tenant."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.hostile import png
from tests.synthetic import class_folder_zip
from trainyard.api.app import create_app
from trainyard.bootstrap import Services

Request = Callable[[TestClient, int], dict[str, Any]]  # (client, variant) → httpx keyword args


@pytest.fixture
def quiet_client(services: Services, api_key: str) -> Iterator[TestClient]:
    """The full app without background workers: nothing here needs a job to run."""
    with TestClient(create_app(services)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {api_key}"
        yield test_client


def _dataset(client: TestClient) -> str:
    response = client.post(
        "/v1/datasets", data={"name": "base"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _finished_upload(client: TestClient, variant: int) -> str:
    archive = class_folder_zip(2, variant)
    made = client.post("/v1/uploads", json={"filename": "d.zip", "size_bytes": len(archive)})
    assert made.status_code == 201, made.text
    assert client.put(made.json()["url"], content=archive).status_code == 200
    return str(made.json()["upload_id"])


@dataclass
class Case:
    name: str
    path: Callable[[TestClient], str]
    request: Request
    count: Callable[[TestClient, Services], int]  # how many records this route has made
    id_field: str


def _datasets(client: TestClient, _: Services) -> int:
    return len(client.get("/v1/datasets", params={"limit": 100}).json()["items"])


def _images(client: TestClient, _: Services) -> int:
    return sum(d["image_count"] for d in client.get("/v1/datasets", params={"limit": 100}).json()["items"])


def _upload_files(_: TestClient, services: Services) -> int:
    return sum(1 for p in services.settings.home.rglob("*") if "upload" in str(p) and p.is_file())


def _endpoints(client: TestClient, _: Services) -> int:
    return len(client.get("/v1/webhook-endpoints").json()["items"])


def _seed002_projects(_: TestClient, services: Services) -> int:
    return len(services.store.list_aliases(services.tenants.ensure_default_tenant(), "002.project"))


def _seed002_start(variant: int) -> dict[str, Any]:
    """A training whose download fails in the background (nothing listens at the Azure
    endpoint): the answer, and the project it claims, are what the key guards."""
    return {
        "json": {
            "profile_id": "prof",
            "project_name": f"teeth{variant}",
            "model_type": "classification",
            "storage_type": "azure",
            "container": "data",
            "folder": "teeth",
            "zipped": False,
            "export": ["onnx"],
            "azure_connection_string": "DefaultEndpointsProtocol=http;AccountName=acct;"
            "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/acct;",
        }
    }


def _tag_images(_: TestClient, services: Services) -> int:
    return len(services.store.list_aliases(services.tenants.ensure_default_tenant(), "003.image"))


CASES = [
    Case(
        "dataset multipart",
        lambda c: "/v1/datasets",
        lambda c, v: {"data": {"name": f"d{v}"}, "files": {"file": ("d.zip", class_folder_zip(2, 1))}},
        _datasets,
        "id",
    ),
    Case(
        "dataset from upload",
        lambda c: "/v1/datasets",
        lambda c, v: {"json": {"name": f"d{v}", "upload_id": _finished_upload(c, v)}},
        _datasets,
        "id",
    ),
    Case(
        "images",
        lambda c: f"/v1/datasets/{_dataset(c)}/images",
        lambda c, v: {
            "json": {"images": [{"image_b64": base64.b64encode(png(16 + v, 16)).decode(), "label": "circle"}]}
        },
        _images,
        "id",
    ),
    Case(
        "upload",
        lambda c: "/v1/uploads",
        lambda c, v: {"json": {"filename": f"d{v}.zip", "size_bytes": 1000}},
        _upload_files,
        "upload_id",
    ),
    Case(
        "webhook endpoint",
        lambda c: "/v1/webhook-endpoints",
        lambda c, v: {"json": {"url": f"https://127.0.0.1:9/hook{v}"}},
        _endpoints,
        "id",
    ),
    Case(
        "seed 003 /custom/add",
        lambda c: "/custom/add",
        lambda c, v: {"files": {"data": ("img.png", png(20 + v, 20), "image/png")}},
        _tag_images,
        "image_id",
    ),
    Case("seed 002 /starttraining/", lambda c: "/starttraining/", lambda c, v: _seed002_start(v),
         _seed002_projects, "project_name"),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_key_and_body_answers_the_first_result_and_stores_nothing_new(
    quiet_client: TestClient, services: Services, case: Case
) -> None:
    path = case.path(quiet_client)
    kwargs = case.request(quiet_client, 1)
    before = case.count(quiet_client, services)
    first = quiet_client.post(path, headers={"Idempotency-Key": f"k-{case.name}"}, **kwargs)
    assert 200 <= first.status_code < 300, first.text
    made = case.count(quiet_client, services)
    assert made > before
    again = quiet_client.post(path, headers={"Idempotency-Key": f"k-{case.name}"}, **kwargs)
    assert again.status_code == first.status_code
    assert again.json()[case.id_field] == first.json()[case.id_field]
    assert case.count(quiet_client, services) == made


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_key_with_another_body_is_a_422_naming_the_key(
    quiet_client: TestClient, services: Services, case: Case
) -> None:
    path = case.path(quiet_client)
    first = quiet_client.post(path, headers={"Idempotency-Key": "shared"}, **case.request(quiet_client, 1))
    assert 200 <= first.status_code < 300, first.text
    made = case.count(quiet_client, services)
    other = quiet_client.post(path, headers={"Idempotency-Key": "shared"}, **case.request(quiet_client, 2))
    assert other.status_code == 422
    assert "Idempotency-Key" in other.text  # the reason, in whatever form the route answers
    assert case.count(quiet_client, services) == made


@pytest.mark.parametrize("case", CASES[:2] + CASES[3:4], ids=[c.name for c in CASES[:2] + CASES[3:4]])
def test_without_a_key_each_request_makes_a_new_record(
    quiet_client: TestClient, services: Services, case: Case
) -> None:
    path = case.path(quiet_client)
    ids = {quiet_client.post(path, **case.request(quiet_client, 1)).json()[case.id_field] for _ in range(2)}
    assert len(ids) == 2


def test_two_tenants_with_the_same_key_are_independent(quiet_client: TestClient, services: Services) -> None:
    _, _, other_key = services.tenants.create_tenant("other")
    request = {"data": {"name": "d"}, "files": {"file": ("d.zip", class_folder_zip(2, 1))}}
    mine = quiet_client.post("/v1/datasets", headers={"Idempotency-Key": "same"}, **request)
    theirs = quiet_client.post(
        "/v1/datasets", headers={"Idempotency-Key": "same", "Authorization": f"Bearer {other_key}"}, **request
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_failed_request_keeps_nothing_so_its_retry_runs(quiet_client: TestClient) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    broken = quiet_client.post(
        "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", b"not a zip")}
    )
    assert broken.status_code in (400, 422)
    # the same key and body fail again for the same reason (not replayed, not "in progress")
    assert (
        quiet_client.post(
            "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", b"not a zip")}
        ).json()
        == broken.json()
    )
    fixed = quiet_client.post(
        "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
    )
    assert fixed.status_code == 201


def test_a_replayed_webhook_registration_never_stores_the_secret(
    quiet_client: TestClient, services: Services
) -> None:
    headers = {"Idempotency-Key": "hook"}
    first = quiet_client.post("/v1/webhook-endpoints", headers=headers, json={"url": "https://127.0.0.1:9/h"})
    assert first.json()["secret"].startswith("whsec_")
    again = quiet_client.post("/v1/webhook-endpoints", headers=headers, json={"url": "https://127.0.0.1:9/h"})
    assert again.json()["id"] == first.json()["id"] and "secret" not in again.json()
    assert first.json()["secret"] not in (services.settings.home / "trainyard.db").read_bytes().decode(
        "latin-1"
    )


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "na\xefve".encode("latin-1")])
def test_a_malformed_key_is_refused(quiet_client: TestClient, key: str | bytes) -> None:
    response = quiet_client.post(
        "/v1/uploads", headers={"Idempotency-Key": key}, json={"filename": "a.zip", "size_bytes": 10}
    )
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["message"]


def test_a_seed_route_refuses_in_its_own_form(quiet_client: TestClient) -> None:
    headers = {"Idempotency-Key": "seed-key"}
    first = quiet_client.post(
        "/custom/add", headers=headers, files={"data": ("a.png", png(20, 20), "image/png")}
    )
    assert first.json()["status"] == "ok"
    # served again under its prefix: the same operation, so the same key space
    other = quiet_client.post(
        "/seeds/003/custom/add", headers=headers, files={"data": ("a.png", png(24, 24), "image/png")}
    )
    assert other.status_code == 422 and set(other.json()) == set(
        quiet_client.post("/custom/add", files={"data": ("x.txt", b"no", "text/plain")}).json()
    )
