"""The pieces every seed router shares: errors in the seed's own form, and who the caller is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from trainyard.api.seeds.common import SeedTenantDep, TokenTenantDep, seed_router
from trainyard.bootstrap import Services, bootstrap
from trainyard.errors import Conflict, NotFound
from trainyard.services.tenants import DEFAULT_TENANT
from trainyard.settings import Settings


def render(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"state": "bad", "code": code, "why": message}, status_code=status)


class Body(BaseModel):
    count: int


def make_app(services: Services) -> FastAPI:
    router = seed_router(render)

    @router.get("/who")
    def who(tenant: SeedTenantDep) -> dict[str, str]:
        return {"tenant": tenant}

    @router.get("/who-token")
    def who_token(tenant: TokenTenantDep) -> dict[str, str]:
        return {"tenant": tenant}

    @router.get("/missing")
    def missing() -> None:
        raise NotFound("tag 'cat' not found")

    @router.get("/taken")
    def taken() -> None:
        raise Conflict("project 'p' exists")

    @router.post("/typed")
    def typed(body: Body) -> dict[str, int]:
        return {"count": body.count}

    @router.get("/bug")
    def bug() -> None:
        raise RuntimeError("secret internals")

    app = FastAPI()
    app.state.services = services
    app.include_router(router)
    return app


@pytest.fixture
def seed_client(services: Services) -> Iterator[TestClient]:
    with TestClient(make_app(services), raise_server_exceptions=False) as client:
        yield client


def test_every_failure_is_rendered_in_the_seed_form(seed_client: TestClient) -> None:
    missing = seed_client.get("/missing")
    assert missing.status_code == 404
    assert missing.json() == {"state": "bad", "code": "not_found", "why": "tag 'cat' not found"}
    assert seed_client.get("/taken").status_code == 409
    invalid = seed_client.post("/typed", json={"count": "many"})
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "invalid_input" and "count" in invalid.json()["why"]
    bug = seed_client.get("/bug")
    assert bug.status_code == 500
    assert "secret internals" not in bug.text and bug.json()["state"] == "bad"


def test_a_key_is_taken_bare_or_as_bearer(services: Services, seed_client: TestClient) -> None:
    _, _, key = services.tenants.create_tenant("acme")
    for header in (key, f"Bearer {key}", f"bearer  {key} "):
        answer = seed_client.get("/who-token", headers={"Authorization": header})
        assert answer.status_code == 200, answer.text
        tenant = answer.json()["tenant"]
        assert tenant != DEFAULT_TENANT
        assert seed_client.get("/who", headers={"Authorization": header}).json() == {"tenant": tenant}
    wrong = seed_client.get("/who-token", headers={"Authorization": "ty_not_a_key"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    assert seed_client.get("/who", headers={"Authorization": "ty_not_a_key"}).status_code == 401


def test_keyless_calls_act_for_the_default_tenant_locally_but_never_for_token_routes(
    seed_client: TestClient,
) -> None:
    assert seed_client.get("/who").json() == {"tenant": DEFAULT_TENANT}
    refused = seed_client.get("/who-token")
    assert refused.status_code == 401 and "token" in refused.json()["why"]


def test_keyless_calls_are_refused_when_anonymous_access_is_off(settings: Settings) -> None:
    closed = bootstrap(settings.model_copy(update={"seed_anonymous_access": False}))
    with TestClient(make_app(closed)) as client:
        refused = client.get("/who")
    assert refused.status_code == 401 and "missing API key" in refused.json()["why"]
    assert Settings(backend="aws").allows_anonymous_seed_calls is False
    assert Settings(backend="local").allows_anonymous_seed_calls is True
