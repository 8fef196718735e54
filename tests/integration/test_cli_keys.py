"""The key command line: create a tenant key, list (never the key or its hash), revoke."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from trainyard.api.app import create_app
from trainyard.bootstrap import bootstrap
from trainyard.services.tenants import hash_key
from trainyard.settings import Settings


def cli(home: Path, *args: str) -> str:
    env = {**os.environ, "TRAINYARD_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "trainyard", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_create_list_revoke(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = cli(home, "create", "--tenant", "acme")
    key = re.search(r"API key: (\S+)", created).group(1)  # type: ignore[union-attr]
    key_id = re.search(r"key id: (\S+)", created).group(1)  # type: ignore[union-attr]
    listing = cli(home, "list")
    assert key_id in listing and "active" in listing
    assert key not in listing and hash_key(key) not in listing
    assert key not in (home / "trainyard.db").read_bytes().decode(errors="ignore")

    services = bootstrap(Settings(home=home))
    with TestClient(create_app(services)) as client:
        assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        cli(home, "revoke", key_id)
        assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert "revoked" in cli(home, "list")
