"""What every seed router shares: who the caller is, and errors in the seed's own form.

Each seed API (the five services Trainyard replaces, ../shared/seeds/) is a thin router over
the core services. Its clients know only its own error shapes, so each router renders every
error — a domain error, a request that fails validation, a bug — through its own `render`
function, never through the core API's {"error", "message"} body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...errors import TrainyardError, Unauthorized
from ...services.tenants import key_from_authorization
from ..deps import ServicesDep
from ..errors import STATUS_BY_ERROR, describe_validation_error

log = logging.getLogger(__name__)


class RenderError(Protocol):
    def __call__(self, status: int, code: str, message: str) -> Response: ...


def _status_of(exc: TrainyardError) -> int:
    return next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 400)


def seed_router(render: RenderError) -> APIRouter:
    """An APIRouter whose routes answer every failure with `render(status, code, message)`."""

    class SeedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except TrainyardError as exc:
                    return render(_status_of(exc), exc.code, exc.message)
                except RequestValidationError as exc:
                    return render(422, "invalid_input", describe_validation_error(exc))
                except StarletteHTTPException as exc:
                    return render(exc.status_code, "http_error", str(exc.detail))
                except Exception:
                    log.exception("unhandled error on %s %s", request.method, request.url.path)
                    return render(500, "internal_error", "internal error; the request was not applied")

            return handle

    # FastAPI would declare its own 422 body ({"detail": [...]}) in the OpenAPI; these routes
    # answer every failure in the seed's form, so that form is what the schema must say.
    example = render(422, "invalid_input", "x")
    media_type = example.media_type or "application/json"
    body = bytes(example.body)
    error_form = {
        "description": "The request was refused (the seed's error form)",
        "content": {
            media_type: {
                "schema": _schema_of(json.loads(body))
                if media_type == "application/json"
                else {"type": "string"}
            }
        },
    }
    return APIRouter(route_class=SeedRoute, responses={422: error_form, "4XX": error_form})


def _schema_of(example: Any) -> dict[str, Any]:
    """A JSON schema of the error body `render` produces, read off one rendering of it: every
    rendering has the same keys and types (the code and message vary, not the shape)."""
    if isinstance(example, dict):
        return {
            "type": "object",
            "properties": {key: _schema_of(value) for key, value in example.items()},
            "required": sorted(example),
        }
    if isinstance(example, list):
        return {"type": "array"}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    return {"type": "string"} if isinstance(example, str) else {}


def seed_tenant(request: Request, services: ServicesDep) -> str:
    """The caller's tenant for seeds whose clients never sent a key (000, 001, 003, 004): the
    key's tenant when one is sent; otherwise the default tenant when the setting
    seed_anonymous_access allows it (on by default for the local stack only)."""
    key = key_from_authorization(request.headers.get("authorization"))
    if key is not None:
        return services.tenants.authenticate(key)
    if services.settings.allows_anonymous_seed_calls:
        return services.tenants.ensure_default_tenant()
    raise Unauthorized("missing API key: send 'Authorization: <key>' or 'Authorization: Bearer <key>'")


def token_tenant(request: Request, services: ServicesDep) -> str:
    """Seed 002's token auth: the key is always required."""
    key = key_from_authorization(request.headers.get("authorization"))
    if key is None:
        raise Unauthorized("missing token: send 'Authorization: <key>'")
    return services.tenants.authenticate(key)


SeedTenantDep = Annotated[str, Depends(seed_tenant)]
TokenTenantDep = Annotated[str, Depends(token_tenant)]
