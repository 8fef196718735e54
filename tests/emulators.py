"""Real storage emulators the tests start and stop: moto's S3 server (with IAM checking of the
access keys, so wrong credentials are refused as AWS would) and Azurite's blob service.

Each runs as a subprocess on a free port and is waited for before use.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.local_stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BLOB = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
# moto answers this many requests before it checks keys: the ones that create the IAM user
# whose keys the tests then use (create_user, create_access_key, put_user_policy)
MOTO_UNCHECKED_REQUESTS = 3
S3_READ_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
)


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class S3Emulator:
    endpoint: str
    access_key_id: str
    secret_access_key: str

    def client(self, access_key_id: str | None = None, secret_access_key: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
        )

    def put_files(self, bucket: str, files: dict[str, bytes]) -> None:
        s3 = self.client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        for key, data in files.items():
            s3.put_object(Bucket=bucket, Key=key, Body=data)


@contextmanager
def moto_s3_server() -> Iterator[S3Emulator]:
    """moto's server with IAM authentication on: an IAM user with S3 rights is made first,
    and only its keys (signatures checked) are accepted afterwards."""
    import boto3

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(MOTO_UNCHECKED_REQUESTS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "moto server")
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="dataset-owner")
        key = iam.create_access_key(UserName="dataset-owner")["AccessKey"]
        iam.put_user_policy(UserName="dataset-owner", PolicyName="s3", PolicyDocument=S3_READ_POLICY)
        yield S3Emulator(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _stop(process)


@dataclass(frozen=True)
class AzureEmulator:
    account: str
    key: str
    blob_endpoint: str

    def connection_string(self, key: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={key or self.key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def put_files(self, container: str, files: dict[str, bytes]) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string())
        client = service.get_container_client(container)
        try:
            client.create_container()
        except ResourceExistsError:
            pass
        for name, data in files.items():
            client.upload_blob(name, data, overwrite=True)


@contextmanager
def azurite_blob_server() -> Iterator[AzureEmulator]:
    """Azurite's blob service in memory, with an account whose key is made for this run (so a
    test can look for it in what the service stored)."""
    if not AZURITE_BLOB.exists():
        raise RuntimeError(f"{AZURITE_BLOB} is missing: run `make venvs` (it npm-installs azurite)")
    port = free_port()
    account = "trainyardtest"
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        process = subprocess.Popen(
            [
                str(AZURITE_BLOB),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",  # the SDK may speak a newer API version than Azurite knows
            ],
            cwd=workdir,
            env={**os.environ, "AZURITE_ACCOUNTS": f"{account}:{key}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, process, "azurite-blob")
            yield AzureEmulator(account, key, f"http://127.0.0.1:{port}/{account}")
        finally:
            _stop(process)
