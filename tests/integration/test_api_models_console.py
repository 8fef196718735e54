"""Routes the web console's model page needs beyond the rest of /v1/models: a model's versions.

The versions are recorded as the seed 000 feed records them (a numbered model whose alias
lists its Trainyard model versions, each fine-tuned from the one before through
`initial_model_id`); the records are written straight into the store, since what is under
test is how the route finds and pages them, not training (tests/integration/test_seed000_feed.py
trains real versions)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from trainyard.bootstrap import Services
from trainyard.domain import Job, JobType, Model, ModelStatus, Task
from trainyard.services.model_versions import SEED000_MODELS as MODELS
from trainyard.services.model_versions import VersionedModels


def record_model(services: Services, tenant: str, number: int, initial_model_id: str | None = None) -> Model:
    params: dict[str, Any] = {"epochs": 2}
    if initial_model_id is not None:
        params["initial_model_id"] = initial_model_id
    job = Job(
        id=f"job_v{number}", tenant_id=tenant, type=JobType.TRAIN, task=Task.CLASSIFICATION,
        dataset_id="ds_shapes", model_id=f"mdl_v{number}", params=params, epochs=2,
    )  # fmt: skip
    model = Model(
        id=f"mdl_v{number}", tenant_id=tenant, name="shapes", task=Task.CLASSIFICATION, job_id=job.id,
        dataset_id="ds_shapes", params=params, status=ModelStatus.READY,
        metrics={"val_accuracy": 0.5 + number / 10},
    )  # fmt: skip
    services.store.create_job(job, model)
    return model


@pytest.fixture
def tenant(services: Services, client: TestClient) -> str:
    """The default tenant (the one `client`'s key belongs to)."""
    return services.tenants.ensure_default_tenant()


def test_a_fed_model_lists_every_version_oldest_first_from_any_of_them(
    services: Services, client: TestClient, tenant: str
) -> None:
    first = record_model(services, tenant, 1)
    versioned = VersionedModels(services.store, tenant, MODELS).create(first.id, {})
    for number in (2, 3):
        fed = record_model(services, tenant, number, initial_model_id=versioned.latest)
        versioned = VersionedModels(services.store, tenant, MODELS).add_version(versioned, fed.id)
    for asked in ("mdl_v1", "mdl_v2", "mdl_v3"):  # an earlier version also sees the later ones
        response = client.get(f"/v1/models/{asked}/versions")
        assert response.status_code == 200, response.text
        body = response.json()
        assert [(v["version"], v["id"]) for v in body["items"]] == [
            (1, "mdl_v1"), (2, "mdl_v2"), (3, "mdl_v3"),
        ]  # fmt: skip
        assert body["next_cursor"] is None
    third = client.get("/v1/models/mdl_v3/versions").json()["items"][2]
    assert third["status"] == "ready" and third["metrics"] == {"val_accuracy": 0.8}
    assert third["job_id"] == "job_v3" and third["created_at"]


def test_a_model_outside_seed_000_lists_its_fine_tuning_lineage(
    services: Services, client: TestClient, tenant: str
) -> None:
    record_model(services, tenant, 1)
    record_model(services, tenant, 2, initial_model_id="mdl_v1")
    assert [v["id"] for v in client.get("/v1/models/mdl_v2/versions").json()["items"]] == ["mdl_v1", "mdl_v2"]
    assert [v["id"] for v in client.get("/v1/models/mdl_v1/versions").json()["items"]] == ["mdl_v1"]


def test_versions_are_paginated(services: Services, client: TestClient, tenant: str) -> None:
    record_model(services, tenant, 1)
    for number in range(2, 6):
        record_model(services, tenant, number, initial_model_id=f"mdl_v{number - 1}")
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = client.get("/v1/models/mdl_v5/versions", params=params).json()
        seen += [v["version"] for v in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5] and pages == 3
    refused = client.get("/v1/models/mdl_v5/versions", params={"cursor": "not-a-cursor"})
    assert refused.status_code == 422 and "cursor" in refused.text


def test_a_version_deleted_on_its_own_keeps_the_others_numbered(
    services: Services, client: TestClient, tenant: str
) -> None:
    first = record_model(services, tenant, 1)
    versioned = VersionedModels(services.store, tenant, MODELS).create(first.id, {})
    second = record_model(services, tenant, 2, initial_model_id=first.id)
    VersionedModels(services.store, tenant, MODELS).add_version(versioned, second.id)
    assert client.delete("/v1/models/mdl_v1").status_code == 204
    items = client.get("/v1/models/mdl_v2/versions").json()["items"]
    assert [(v["version"], v["id"]) for v in items] == [(2, "mdl_v2")]


def test_another_tenants_model_has_no_versions_to_show(
    services: Services, client: TestClient, tenant: str
) -> None:
    record_model(services, tenant, 1)
    _, _, other_key = services.tenants.create_tenant("other")
    response = client.get("/v1/models/mdl_v1/versions", headers={"Authorization": f"Bearer {other_key}"})
    assert response.status_code == 404
    assert client.get("/v1/models/mdl_missing/versions").status_code == 404


def test_the_route_is_declared_in_openapi(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{model_id}/versions"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"model_id", "limit", "cursor"}
