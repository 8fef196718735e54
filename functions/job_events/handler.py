"""Lambda entry point of `job_events`: the EventBridge target for the container's progress
events (custom bus, source `trainyard.container`) and for SageMaker/Batch state changes of
runs named `trainyard-<job id>` (default bus).

EventBridge delivers at least once, so each event is applied once per key with Powertools
idempotency on the job table (items `pk = IDEMPOTENCY#job_events`, `sk = <function>#<hash of
the key>`, TTL `expires_at`). The key is the progress event's own `event_id` (the container may
publish one event twice under two envelope ids) and the envelope `id` for native events. The
services' conditional writes would absorb replays anyway; idempotency saves the work and
keeps metrics from counting a replay twice. Set POWERTOOLS_IDEMPOTENCY_DISABLED=true to run
without the table (e.g. `sam local invoke`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainyard.container_services import ContainerServices
from trainyard.domain import job_id_from_platform_name

CONTAINER_SOURCE = "trainyard.container"
PROGRESS_DETAIL_TYPE = "Job Progress"
PLATFORM_SOURCES = frozenset({"aws.sagemaker", "aws.batch"})
# the platform's terminal states, for the jobs_succeeded / jobs_failed metrics
SUCCEEDED_STATES = frozenset({"Completed", "SUCCEEDED"})
FAILED_STATES = frozenset({"Failed", "Stopped", "FAILED"})
IDEMPOTENCY_PARTITION = "IDEMPOTENCY#job_events"
# EventBridge retries for up to a day; a replay inside that window must still be recognised
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600

logger = Logger()
tracer = Tracer()
metrics = Metrics()

services = ContainerServices()  # built on the first event of this container
_apply_once: Callable[..., dict[str, Any]] | None = None
_idempotency_config = IdempotencyConfig(
    event_key_jmespath="idempotency_key",
    expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
    raise_on_no_idempotency_key=True,
)


def apply(event: dict[str, Any]) -> dict[str, Any]:
    """Hands one event to its service and records the metrics it stands for."""
    source, detail = event["source"], event["detail"]
    if source == CONTAINER_SOURCE:
        services().job_events.handle_progress(detail)
        record_progress_metrics(detail)
    else:
        services().platform_events.handle_state_change(source, detail)
        record_platform_metrics(detail)
    return {"applied": event["idempotency_key"]}


def record_progress_metrics(detail: dict[str, Any]) -> None:
    if detail.get("kind") == "status" and detail.get("status") == "RUNNING":
        metrics.add_metric(name="jobs_started", unit=MetricUnit.Count, value=1)
    elif detail.get("kind") == "epoch" and isinstance(detail.get("duration_seconds"), int | float):
        metrics.add_metric(name="epoch_duration", unit=MetricUnit.Seconds, value=detail["duration_seconds"])
    elif detail.get("kind") == "failed":
        metrics.add_metric(name="jobs_failed", unit=MetricUnit.Count, value=1)


def record_platform_metrics(detail: dict[str, Any]) -> None:
    state = detail.get("TrainingJobStatus") or detail.get("status")
    if state in SUCCEEDED_STATES:
        metrics.add_metric(name="jobs_succeeded", unit=MetricUnit.Count, value=1)
    elif state in FAILED_STATES:
        metrics.add_metric(name="jobs_failed", unit=MetricUnit.Count, value=1)


def apply_once() -> Callable[..., dict[str, Any]]:
    """`apply` behind the idempotency guard; the persistence layer is built on first use so
    nothing reads settings or makes clients at import time."""
    global _apply_once
    if _apply_once is None:
        persistence = DynamoDBPersistenceLayer(
            table_name=services().settings.table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=IDEMPOTENCY_PARTITION,
            expiry_attr="expires_at",
        )
        _apply_once = idempotent_function(
            data_keyword_argument="event", config=_idempotency_config, persistence_store=persistence
        )(apply)
    return _apply_once


def job_id_of(event: EventBridgeEvent) -> str | None:
    detail = event.detail
    if event.source == CONTAINER_SOURCE:
        return str(detail.get("job_id"))
    return job_id_from_platform_name(detail.get("TrainingJobName") or detail.get("jobName"))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    is_progress = event.source == CONTAINER_SOURCE and event.detail_type == PROGRESS_DETAIL_TYPE
    if not is_progress and event.source not in PLATFORM_SOURCES:
        logger.warning("ignoring an event no rule should route here", source=event.source)
        return {"ignored": event.get_id}
    logger.append_keys(job_id=job_id_of(event), source=event.source)
    key = event.detail.get("event_id") if is_progress else event.get_id
    _idempotency_config.register_lambda_context(context)
    return apply_once()(event={"idempotency_key": key, "source": event.source, "detail": dict(event.detail)})
