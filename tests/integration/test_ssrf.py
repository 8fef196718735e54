"""SSRF protection applied (services/outbound.py): every route that takes a webhook URL refuses
non-public ones with a 4xx naming webhook_url and records nothing; seed 002 refuses an Azure
connection string whose blob endpoint is private; a delivery re-checks the address at each
attempt (DNS rebinding fails the attempt, nothing sent); the chat API URL is checked at use.
The local default (loopback allowed) keeps loopback receivers working."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import record_job, webhook_receiver
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import DeliveryStatus, JobStatus
from trainyard.settings import Settings

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def strict_services(tmp_path: Path) -> Services:
    """The stack as on AWS: loopback URLs refused."""
    return bootstrap(Settings(home=tmp_path / "strict", allow_loopback_urls=False))


@pytest.fixture
def strict_client(strict_services: Services) -> Iterator[TestClient]:
    key = strict_services.tenants.ensure_default_key(None, strict_services.settings.home / "api_key")
    with TestClient(create_app(strict_services, background_work=False)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {key}"
        yield test_client


def train_body(webhook_url: str) -> dict[str, Any]:
    return {"type": "train", "dataset_id": "ds_missing", "model_name": "m", "webhook_url": webhook_url}


@pytest.mark.parametrize(
    "webhook_url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://2130706433/hook",
        "https://example.com@127.0.0.1/hook",
        "http://example.com/hook",
    ],
)
def test_core_jobs_refuse_non_public_webhooks_and_record_nothing(
    client: TestClient, services: Services, webhook_url: str
) -> None:
    response = client.post("/v1/jobs", json=train_body(webhook_url))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "unsafe_url"
    assert response.json()["message"].startswith("webhook_url:")
    assert services.store.list_jobs("default", 10, None).items == []


def test_loopback_webhooks_are_refused_when_the_setting_is_off(strict_client: TestClient) -> None:
    response = strict_client.post("/v1/jobs", json=train_body("http://127.0.0.1:9/hook"))
    assert response.status_code == 422
    assert "loopback" in response.json()["message"]


def test_loopback_webhooks_pass_the_check_by_default_locally(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=train_body("http://127.0.0.1:9/hook"))
    # past the URL check, the job is refused for its (missing) dataset
    assert response.status_code == 404 and "ds_missing" in response.json()["message"]


def seed002_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "profile_id": "p",
        "project_name": "ssrf",
        "model_type": "classification",
        "storage_type": "azure",
        "container": "datasets",
        "folder": "x",
        "zipped": False,
        "epochs": 2,
        "azure_connection_string": "AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"webhook_url": "https://192.168.1.10/hook"}, "webhook_url"),
        (
            {
                "azure_connection_string": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
                "BlobEndpoint=http://169.254.169.254/latest"
            },
            "azure_connection_string",
        ),
        (
            {"azure_connection_string": "AccountName=a;AccountKey=a2V5;BlobEndpoint=https://10.1.2.3/"},
            "azure_connection_string",
        ),
    ],
)
def test_seed002_refuses_private_webhooks_and_storage_endpoints(
    client: TestClient, services: Services, api_key: str, overrides: dict[str, Any], named: str
) -> None:
    response = client.post(
        "/starttraining/", json=seed002_body(**overrides), headers={"Authorization": api_key}
    )
    assert 400 <= response.status_code < 500, response.text
    assert named in response.json()["message"]
    assert services.store.list_jobs("default", 10, None).items == []
    # the project was not claimed: the same project name can be started again
    again = client.post("/starttraining/", json=seed002_body(**overrides), headers={"Authorization": api_key})
    assert again.status_code == response.status_code


def test_a_rebinding_webhook_fails_the_attempt_without_sending(
    strict_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver listens on loopback; its name answered a public address when the job was
    created, and answers loopback at delivery: the attempt is refused and logged."""
    with webhook_receiver() as receiver:
        port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])

        def getaddrinfo(host: Any, port_: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "hooks.rebind.test":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port_)))]
            return REAL_GETADDRINFO(host, port_, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        job = record_job(strict_services.store, webhook_url=f"https://hooks.rebind.test:{port}/hook")
        strict_services.jobs.transition(job.id, JobStatus.FAILED, error="boom")
        strict_services.webhooks.deliver_due()
    assert receiver.requests == []
    [delivery] = strict_services.webhooks.deliveries("default", job.id)
    assert delivery.attempts == 1 and delivery.status is not DeliveryStatus.DELIVERED
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("not sent:") and "loopback" in delivery.last_error


def test_loopback_receivers_still_get_deliveries_by_default(services: Services) -> None:
    with webhook_receiver() as receiver:
        job = record_job(services.store, webhook_url=receiver.url)
        services.jobs.transition(job.id, JobStatus.SUCCEEDED)
        services.webhooks.deliver_due()
    assert len(receiver.requests) == 1
    assert services.webhooks.deliveries("default", job.id)[0].status is DeliveryStatus.DELIVERED


def test_a_chat_api_url_on_a_private_address_is_refused_at_use(tmp_path: Path) -> None:
    from trainyard.errors import Unavailable
    from trainyard.services.assistant import ask_chat

    settings = Settings(home=tmp_path / "chat", chat_api_url="https://169.254.169.254/v1")
    with pytest.raises(Unavailable, match="TRAINYARD_CHAT_API_URL is refused.*metadata"):
        ask_chat(settings, "hello?")


def test_seed002_refuses_a_private_default_webhook_setting(tmp_path: Path) -> None:
    """A request that names no webhook gets TRAINYARD_SEED002_DEFAULT_WEBHOOK_URL, checked the same."""
    services = bootstrap(
        Settings(home=tmp_path / "default-hook", seed002_default_webhook_url="https://10.9.8.7/hook")
    )
    key = services.tenants.ensure_default_key(None, services.settings.home / "api_key")
    with TestClient(create_app(services, background_work=False)) as test_client:
        response = test_client.post("/starttraining/", json=seed002_body(), headers={"Authorization": key})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["message"].startswith("webhook_url:") and "private" in response.json()["message"]
    assert services.store.list_jobs("default", 10, None).items == []
