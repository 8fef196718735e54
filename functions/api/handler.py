"""Lambda entry point of the HTTP API: the same FastAPI app as the local stack, via Mangum.

The app and its adapters are built on the first invocation, not at import (no clients at
import time: cold starts stay short and tests can start moto first). Background work
(webhook delivery, job reconciliation) belongs to the other functions on AWS.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

_handler: Mangum | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        from trainyard.api.app import create_app
        from trainyard.bootstrap import bootstrap
        from trainyard.settings import Settings

        _handler = Mangum(create_app(bootstrap(Settings())), lifespan="off")
    response: dict[str, Any] = _handler(event, context)
    return response
