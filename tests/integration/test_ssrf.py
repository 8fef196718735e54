"""SSRF protection applied (services/outbound.py): every route that takes a webhook URL refuses
non-public ones with a 4xx naming webhook_url and records nothing; seed 002 refuses an Azure
connection string whose blob endpoint is private; a delivery re-checks the address at each
attempt (DNS rebinding fails the attempt, nothing sent); the chat API URL is checked at use.
The local default (loopback allowed) keeps loopback receivers working.

Seed 002's downloads: boto3 and the Azure SDK connect inside `pinned_connections`, so a storage
endpoint that rebinds after its checks is never connected to (the import fails naming the host),
real downloads from the loopback emulators still work, and other threads are unaffected."""

from __future__ import annotations

import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.emulators import AzureEmulator, S3Emulator, azurite_blob_server, moto_s3_server
from tests.helpers import record_job, webhook_receiver
from tests.integration.test_seed002 import class_files
from tests.unit.test_outbound import fake_resolver, recorded_connects
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import DeliveryStatus, JobStatus
from trainyard.services.external_datasets import (
    AzureObjects,
    ExternalSource,
    FetchLimits,
    S3Objects,
    fetch_dataset,
)
from trainyard.services.outbound import ConnectPolicy, UnsafeURL, pinned_connections
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


# --- seed 002's storage downloads: the SDKs' connections are pinned ----------------------------

# the storage endpoint is checked three times before the download opens a connection: by the
# route, by ExternalTrainingService.start, and just before the download
CHECKS_BEFORE_THE_DOWNLOAD = 3
LIMITS = FetchLimits(max_files=100, max_total_bytes=10_000_000, max_archive_bytes=10_000_000)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Emulator]:
    with moto_s3_server() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def azure() -> Iterator[AzureEmulator]:
    with azurite_blob_server() as emulator:
        yield emulator


class AcceptCounter:
    """A loopback TCP listener that counts the connections it accepts (and closes them)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._socket.close()


@pytest.mark.parametrize(
    ("rebound_to", "named"),
    [("127.0.0.1", "loopback"), ("10.0.0.5", "private"), ("169.254.169.254", "cloud metadata")],
)
def test_an_s3_endpoint_that_rebinds_after_its_checks_fails_the_import_unconnected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rebound_to: str, named: str
) -> None:
    """The stack as on AWS (loopback refused). The S3 endpoint's name answers a public address
    to every check, then `rebound_to`, where a listener waits: the download's connection is
    refused before it is made, the job ends FAILED naming the host and why, nothing is
    stored and nothing connected (the listener accepted nothing)."""
    fake_dns, connects = fake_resolver(monkeypatch), recorded_connects(monkeypatch)
    listener = AcceptCounter()
    lookups: list[str] = []

    def rebinding() -> list[str]:
        lookups.append("93.184.216.34" if len(lookups) < CHECKS_BEFORE_THE_DOWNLOAD else rebound_to)
        return lookups[-1:]

    fake_dns["s3.rebind.test"] = rebinding
    services = bootstrap(
        Settings(
            home=tmp_path / "strict",
            allow_loopback_urls=False,
            external_s3_endpoint=f"https://s3.rebind.test:{listener.port}",
        )
    )
    key = services.tenants.ensure_default_key(None, services.settings.home / "api_key")
    body = {
        "profile_id": "p",
        "project_name": "rebind",
        "model_type": "classification",
        "storage_type": "aws",
        "container": "datasets",
        "folder": "teeth",
        "zipped": False,
        "epochs": 2,
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "not-a-real-secret",
    }
    try:
        with TestClient(create_app(services, background_work=False)) as test_client:
            test_client.headers["Authorization"] = key
            started = test_client.post("/starttraining/", json=body)
            assert started.status_code == 200 and started.json()["status"] == "PENDING", started.text
            deadline = time.monotonic() + 60
            status = test_client.get("/statustraining/p/rebind").json()
            while status["result"] != "FAILED" and time.monotonic() < deadline:
                time.sleep(0.1)
                status = test_client.get("/statustraining/p/rebind").json()
            datasets = test_client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"})
    finally:
        listener.close()
    assert status["result"] == "FAILED", status
    assert (
        f"S3 bucket 'datasets': not connected: the host s3.rebind.test ({rebound_to}) is a {named}"
        in status["message"]
    ), status["message"]
    assert lookups[CHECKS_BEFORE_THE_DOWNLOAD:], "the download never looked the name up"
    assert listener.accepted == 0 and connects == []
    assert datasets.json()["items"] == []


def test_downloads_from_the_loopback_emulators_work_inside_the_guard(
    tmp_path: Path,
    s3: S3Emulator,
    azure: AzureEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With loopback allowed, real S3 (moto's server) and Azure (Azurite) downloads through
    names that resolve to loopback: every connection is made to the checked loopback address
    of the emulator, and the files arrive."""
    files = class_files("teeth/", "flat")
    s3.put_files("guarded", files)
    azure.put_files("guarded", files)
    fake_dns, connects = fake_resolver(monkeypatch), recorded_connects(monkeypatch)
    s3_port = int(s3.endpoint.rsplit(":", 1)[1])
    azure_port = int(azure.blob_endpoint.split(":")[2].split("/")[0])
    # moto's server reads the bucket from the path for a host named localstack*, from the
    # host name's first label otherwise
    fake_dns["localstack.test"] = lambda: ["127.0.0.1"]
    # Azurite takes the account from the first label of a host name (from the path for an IP)
    fake_dns[f"{azure.account}.blob.test"] = lambda: ["127.0.0.1"]
    s3_source = ExternalSource(
        "aws",
        "guarded",
        "teeth",
        zipped=False,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
    )
    azure_source = ExternalSource(
        "azure",
        "guarded",
        "teeth",
        zipped=False,
        azure_connection_string=azure.connection_string().replace(
            azure.blob_endpoint, f"http://{azure.account}.blob.test:{azure_port}"
        ),
    )
    sources = [
        (s3_source, S3Objects(s3_source, f"http://localstack.test:{s3_port}", None), s3_port),
        (azure_source, AzureObjects(azure_source), azure_port),
    ]
    for source, objects, port in sources:
        workdir = tmp_path / source.storage_type
        with pinned_connections(ConnectPolicy(allow_loopback=True, loopback_only=True)):
            archive = fetch_dataset(objects, source, workdir, LIMITS)
        with tarfile.open(archive) as tar:
            assert sorted(tar.getnames()) == sorted(name.removeprefix("teeth/") for name in files)
        assert connects and set(connects) == {("127.0.0.1", port)}, source.storage_type
        connects.clear()


def test_a_guarded_download_leaves_other_threads_boto3_calls_alone(s3: S3Emulator) -> None:
    """A strict guard (loopback refused) in this thread: its S3 call to the loopback emulator is
    refused, while another thread's boto3 call to the same emulator goes through."""
    listed: list[Any] = []
    source = ExternalSource(
        "aws",
        "anything",
        "",
        zipped=False,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
    )
    # botocore wraps the refusal (HTTPClientError); the guard unwraps it as it ends
    with pytest.raises(UnsafeURL, match=r"127\.0\.0\.1 is a loopback address"):
        with pinned_connections(ConnectPolicy(allow_loopback=False)):
            other = threading.Thread(target=lambda: listed.append(s3.client().list_buckets()["Buckets"]))
            other.start()
            other.join(30)
            list(S3Objects(source, s3.endpoint, None).list(""))
    assert len(listed) == 1 and isinstance(listed[0], list)
