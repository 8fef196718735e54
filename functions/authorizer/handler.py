"""Lambda entry point of the HTTP API's authorizer (payload 2.0, simple responses).

The identity source is the Authorization header (`Bearer <key>`, or the key alone as seed
002's clients send it); the key's SHA-256 is looked
up in the table by TenantService. The tenant id travels to the API in the authorizer context.
Any failure denies: an authorizer that errors must not let a request through.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainyard.container_services import ContainerServices
from trainyard.errors import Unauthorized
from trainyard.services.tenants import key_from_authorization

logger = Logger()
tracer = Tracer()

DENY: dict[str, Any] = {"isAuthorized": False}

services = ContainerServices()  # built on the first event of this container


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=APIGatewayAuthorizerEventV2)
def handler(event: APIGatewayAuthorizerEventV2, context: LambdaContext) -> dict[str, Any]:
    try:
        tenant_id = services().tenants.authenticate(
            key_from_authorization(event.headers.get("authorization")) or ""
        )
    except Unauthorized:
        logger.info("denied: unknown or revoked key", route=event.route_key)
        return DENY
    except Exception:
        logger.exception("denied: the key could not be checked")
        return DENY
    logger.append_keys(tenant_id=tenant_id)
    return {"isAuthorized": True, "context": {"tenant_id": tenant_id}}
