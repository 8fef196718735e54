"""Fixtures of the local stack as a user runs it (tests/local_stack.py): real SQLite, real
files, real training subprocesses, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.local_stack import LocalStack
from tests.synthetic import class_folder_zip, labelled_images


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(home=tmp_path_factory.mktemp("stack") / "home")
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="session")
def shapes_dataset(api: httpx.Client) -> dict[str, Any]:
    response = api.post(
        "/v1/datasets",
        data={"name": "shapes"},
        files={"file": ("shapes.zip", class_folder_zip(40, seed=11), "application/zip")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


HELD_OUT = labelled_images(12, seed=999)  # never uploaded
