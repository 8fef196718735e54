"""The web console: static pages (plain HTML, CSS and JavaScript modules, no build step and no
CDN) served by the same app as the API, at /console/. The pages call the public API (/v1 and
the seed routes) with the API key the user signs in with, like any other client; nothing here
reads the services directly.

Seed 004's own pages (`/` to draw a digit, `/entrainer-le-modele` to train, `/assistance` for
the assistant) redirect to the console's matching pages, at the root and under /seeds/004.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
CONSOLE_PATH = "/console"

# Seed 004's page routes → the console page that does the same thing.
SEED004_PAGES = {
    "/": "#/digits",
    "/entrainer-le-modele": "#/digits/train",
    "/assistance": "#/assistant",
}


def mount_console(app: FastAPI) -> None:
    _redirect(app, CONSOLE_PATH, f"{CONSOLE_PATH}/")
    app.mount(CONSOLE_PATH, StaticFiles(directory=STATIC_DIR, html=True), name="console")
    for prefix in ("", "/seeds/004"):
        for path, fragment in SEED004_PAGES.items():
            _redirect(app, prefix + path, f"{CONSOLE_PATH}/{fragment}")


def _redirect(app: FastAPI, path: str, target: str) -> None:
    async def to_console() -> RedirectResponse:
        return RedirectResponse(target, status_code=307)

    app.add_api_route(path, to_console, methods=["GET"], include_in_schema=False, name=f"page {path}")
