"""Seed 004's API (../shared/seeds/004_*.txt). Routes are added by the issue-6 work on this seed."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from .common import seed_router


def render_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


router = seed_router(render_error)
