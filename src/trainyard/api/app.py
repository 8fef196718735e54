"""The FastAPI application. The same object is served by uvicorn locally and wrapped by
Mangum in functions/api on Lambda."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..bootstrap import Services
from ..web import mount_console
from . import (
    routes_assistant,
    routes_datasets,
    routes_jobs,
    routes_models,
    routes_uploads,
    routes_webhooks,
)
from .deps import ServicesDep, TenantDep
from .errors import install_error_handlers
from .seeds import mount_seed_routes


def create_app(services: Services, *, background_work: bool = False) -> FastAPI:
    """`background_work` runs the local stack's threads (workers, webhooks) with the app;
    on Lambda other functions do that work, so the API function leaves it off."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background_work:
            services.start_background_work()
        yield
        if background_work:
            services.stop_background_work()

    app = FastAPI(title="Trainyard", version=__version__, lifespan=lifespan)
    app.state.services = services
    app.state.uploads = services.uploads
    install_error_handlers(app)

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.post(
        "/v1/webhook-secret/rotate",
        tags=["webhooks"],
        summary="Replace the tenant's webhook signing secret; returns the new one once",
    )
    def rotate_webhook_secret(services: ServicesDep, tenant: TenantDep) -> dict[str, str]:
        return {"secret": services.webhooks.rotate_secret(tenant)}

    @app.get("/v1/webhook-secret", tags=["webhooks"], summary="The tenant's webhook signing secret")
    def webhook_secret(services: ServicesDep, tenant: TenantDep) -> dict[str, str]:
        return {"secret": services.webhooks.secret_for(tenant)}

    app.include_router(routes_datasets.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_models.router)
    app.include_router(routes_uploads.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_assistant.router)
    mount_seed_routes(app, services.settings)
    mount_console(app)
    return app
