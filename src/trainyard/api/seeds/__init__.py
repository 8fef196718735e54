"""The seed APIs: the documented routes of the five services Trainyard replaces
(../shared/seeds/), each a thin router over the core services.

Every seed is served under its own prefix (/seeds/000 … /seeds/004) and also at the root, as
its clients expect. The one path two seeds share at the root, POST /predict (003's tags and
004's digits), goes to the seed named by the setting root_predict; the other keeps it under
its prefix.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter

from ...settings import Settings
from . import seed000, seed001, seed002, seed003, seed004

SEED_ROUTERS: dict[str, APIRouter] = {
    "000": seed000.router,
    "001": seed001.router,
    "002": seed002.router,
    "003": seed003.router,
    "004": seed004.router,
}
SHARED_ROOT_PATHS = frozenset({"/predict"})


def mount_seed_routes(app: FastAPI, settings: Settings) -> None:
    for name, router in SEED_ROUTERS.items():
        app.include_router(router, prefix=f"/seeds/{name}", tags=[f"seed {name}"])
        at_root = APIRouter()
        at_root.routes.extend(
            route
            for route in router.routes
            if not (
                isinstance(route, APIRoute)
                and route.path in SHARED_ROOT_PATHS
                and name != settings.root_predict
            )
        )
        app.include_router(at_root, tags=[f"seed {name}"], include_in_schema=False)
