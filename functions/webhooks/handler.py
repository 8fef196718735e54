"""Lambda entry point of `webhooks`.

"Job Status Changed" (source `trainyard.service`): records the job's delivery (deterministic
id, so a replayed event cannot send twice) and attempts what is due. A delivery still pending
afterwards fails the invocation on purpose, so the event is retried (Lambda's async retries)
and, when those run out, lands in the dead-letter queue as a record of the failure.

"Scheduled Event" (every minute): attempts the pending deliveries whose backoff has passed.
The event path alone cannot space attempts over hours: EventBridge's retry policy covers
failed invocations only, and Lambda retries a failed async invocation at most twice.

The schedule is the service's (settings.webhook_retry_delays: Standard Webhooks' steps over
about three days), the same as on the local stack; the sweep's one-minute rate is its
resolution, so the 5 s step becomes the next sweep or Lambda's own retry. The scheduled and the
event invocations may run at once: each attempt is claimed with a conditional write first
(WebhookService.attempt), so only one of them sends it. A dead-lettered event is a record that
the first minutes failed; the delivery itself stays pending and the sweep keeps attempting it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainyard.container_services import ContainerServices
from trainyard.domain import DeliveryStatus

if TYPE_CHECKING:
    from trainyard.domain import WebhookDelivery

SCHEDULED = "Scheduled Event"

logger = Logger()
tracer = Tracer()
metrics = Metrics()

services = ContainerServices()  # built on the first event of this container


class WebhookNotDelivered(RuntimeError):
    """Raised so the event is retried; the delivery record holds every attempt."""


def pending_deliveries(job_id: str) -> list[WebhookDelivery]:
    job = services().store.get_job_any_tenant(job_id)
    if job is None:
        return []
    deliveries = services().webhooks.deliveries(job.tenant_id, job.id)
    return [delivery for delivery in deliveries if delivery.status is DeliveryStatus.PENDING]


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    if event.detail_type == SCHEDULED:
        attempted = services().webhooks.deliver_due()
        metrics.add_metric(name="webhook_attempts", unit=MetricUnit.Count, value=attempted)
        return {"attempted": attempted}
    detail = dict(event.detail)
    logger.append_keys(job_id=detail.get("job_id"), status=detail.get("status"))
    services().webhooks.on_job_status_changed(detail)
    attempted = services().webhooks.deliver_due()
    metrics.add_metric(name="webhook_attempts", unit=MetricUnit.Count, value=attempted)
    pending = pending_deliveries(detail["job_id"])
    if pending:
        metrics.add_metric(name="webhook_attempts_failed", unit=MetricUnit.Count, value=len(pending))
        errors = "; ".join(f"{delivery.id}: {delivery.last_error}" for delivery in pending)
        raise WebhookNotDelivered(f"not delivered yet, retrying: {errors}")
    return {"attempted": attempted}
