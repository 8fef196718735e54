"""Lambda entry point of the HTTP API: the same FastAPI app as the local stack, via Mangum.

The app and its adapters are built on the first invocation, not at import (no clients at
import time: cold starts stay short and tests can start moto first). Background work
(webhook delivery, job reconciliation) belongs to the other functions on AWS. Logs carry the
API Gateway request id as their correlation id.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

logger = Logger()
tracer = Tracer()
_handler: Mangum | None = None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        from trainyard.api.app import create_app
        from trainyard.bootstrap import bootstrap
        from trainyard.settings import Settings

        _handler = Mangum(create_app(bootstrap(Settings())), lifespan="off")
    response: dict[str, Any] = _handler(event, context)
    return response
