"""One behaviour suite for every SecretStore adapter: the local JSON file and Secrets Manager
(moto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from trainyard.adapters.aws.secrets_manager import SecretsManagerStore
from trainyard.adapters.local.secrets_file import FileSecretStore
from trainyard.errors import Unavailable
from trainyard.ports import SecretStore

REGION = "us-east-1"
PREFIX = "trainyard-test/"

ADAPTERS: dict[str, Callable[[Path], SecretStore]] = {
    "file": lambda tmp: FileSecretStore(tmp / "secrets.json"),
    "secretsmanager": lambda tmp: SecretsManagerStore(PREFIX, region_name=REGION),
}
NEEDS_AWS = {"secretsmanager"}


def fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that could never reach a real account, and no profile or endpoint from
    the developer's shell."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=sorted(ADAPTERS))
def secrets(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretStore]:
    if request.param in NEEDS_AWS:
        fake_aws_environment(monkeypatch)
    with mock_aws() if request.param in NEEDS_AWS else nullcontext():
        yield ADAPTERS[request.param](tmp_path)


def test_an_unknown_name_reads_as_none(secrets: SecretStore) -> None:
    assert secrets.get("webhook-secret/t_unknown") is None


def test_put_then_get_and_overwrite(secrets: SecretStore) -> None:
    secrets.put("webhook-secret/t1", "whsec_first")
    assert secrets.get("webhook-secret/t1") == "whsec_first"
    secrets.put("webhook-secret/t1", "whsec_rotated")
    assert secrets.get("webhook-secret/t1") == "whsec_rotated"


def test_names_are_independent(secrets: SecretStore) -> None:
    secrets.put("webhook-secret/t1", "one")
    secrets.put("webhook-secret/t2", "two")
    assert (secrets.get("webhook-secret/t1"), secrets.get("webhook-secret/t2")) == ("one", "two")


def test_delete_removes_the_secret_and_an_unknown_name_is_no_error(secrets: SecretStore) -> None:
    secrets.put("external/job_1", "credentials")
    secrets.put("external/job_2", "others")
    secrets.delete("external/job_1")
    assert secrets.get("external/job_1") is None
    assert secrets.get("external/job_2") == "others"
    secrets.delete("external/job_1")  # a second delete (a redelivered event) changes nothing
    secrets.delete("external/never-stored")
    secrets.put("external/job_1", "again")  # the name is free at once: no recovery window
    assert secrets.get("external/job_1") == "again"


def test_secrets_manager_names_carry_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_environment(monkeypatch)
    with mock_aws():
        SecretsManagerStore(PREFIX, region_name=REGION).put("webhook-secret/t1", "value")
        client = boto3.client("secretsmanager", region_name=REGION)
        assert client.get_secret_value(SecretId=f"{PREFIX}webhook-secret/t1")["SecretString"] == "value"
        assert [s["Name"] for s in client.list_secrets()["SecretList"]] == [f"{PREFIX}webhook-secret/t1"]


def test_the_local_file_holds_only_ciphertext_and_refuses_a_changed_key(tmp_path: Path) -> None:
    import stat

    store = FileSecretStore(tmp_path / "secrets.json")
    store.put("webhook/t1", "whsec_plaintext_material")
    assert b"plaintext_material" not in (tmp_path / "secrets.json").read_bytes()
    for path in (tmp_path / "secrets.json", tmp_path / "secrets.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a second store on the same files (a restart) reads it back
    assert FileSecretStore(tmp_path / "secrets.json").get("webhook/t1") == "whsec_plaintext_material"

    (tmp_path / "secrets.key").unlink()  # the key lost: a new one is made, old secrets are unreadable
    with pytest.raises(Unavailable, match="cannot be decrypted"):
        FileSecretStore(tmp_path / "secrets.json").get("webhook/t1")
