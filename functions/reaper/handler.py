"""Lambda entry point of `reaper` (EventBridge schedule, every 5 minutes): settles the
unfinished jobs whose terminal event never came, by asking the platform about them."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainyard.container_services import ContainerServices

logger = Logger()
tracer = Tracer()
metrics = Metrics()

services = ContainerServices()  # built on the first event of this container


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    report = services().reaper.run()
    metrics.add_metric(name="jobs_reaped", unit=MetricUnit.Count, value=len(report.settled))
    if report.settled:
        logger.info("settled jobs whose terminal event never came", settled=report.settled)
    return {"examined": report.examined, "settled": report.settled}
