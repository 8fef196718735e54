from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.settings import Settings

# Powertools reads these when a function module is imported (as Lambda sets them before its
# import); tests import the functions at collection, so they are set before that.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "trainyard")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "TrainyardTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", webhook_backoff_seconds=0.1, cancel_grace_seconds=3)


@pytest.fixture
def services(settings: Settings) -> Services:
    return bootstrap(settings)


@pytest.fixture
def api_key(services: Services) -> str:
    return services.tenants.ensure_default_key(None, services.settings.home / "api_key")


@pytest.fixture
def client(services: Services, api_key: str) -> Iterator[TestClient]:
    with TestClient(create_app(services, background_work=True)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {api_key}"
        yield test_client
