"""EventBus on Amazon EventBridge: publish is PutEvents on the service's bus.

Who receives an event is not decided in code on AWS: template.yaml declares one rule per
detail-type with the consuming function as its target (docs/aws-design.md, "Events"), and
EventBridge retries each target on its own, as the in-process bus isolates its handlers.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ...ports import EventHandler

DEFAULT_SOURCE = "trainyard.service"


class EventPublishError(RuntimeError):
    """EventBridge accepted the request but rejected the entry (PutEvents reports that in
    the response, not as an exception), so the event was not delivered to any rule."""


class EventBridgeBus:
    def __init__(
        self,
        bus_name: str,
        source: str = DEFAULT_SOURCE,
        client: Any | None = None,
        *,
        region_name: str | None = None,
    ) -> None:
        self._bus_name = bus_name
        self._source = source
        self._client = client
        self._region_name = region_name
        self._client_lock = threading.Lock()

    @property
    def _events(self) -> Any:
        if self._client is None:
            with self._client_lock:  # boto3's default session is not safe to share while building
                if self._client is None:
                    import boto3  # noqa: PLC0415 - only the AWS backend needs it

                    self._client = boto3.client("events", region_name=self._region_name)
        return self._client

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        entry = {
            "EventBusName": self._bus_name,
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":")),
        }
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount", 0):
            failed = response["Entries"][0]
            raise EventPublishError(
                f"EventBridge rejected {detail_type!r} on bus {self._bus_name!r}:"
                f" {failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
            )

    def subscribe(self, detail_type: str, handler: EventHandler) -> None:
        """Records nothing: on AWS a subscription is an EventBridge rule in template.yaml
        whose target is the handler's Lambda function, so there is nothing to register
        in this process. Accepting the call lets the composition root wire both backends
        the same way."""
