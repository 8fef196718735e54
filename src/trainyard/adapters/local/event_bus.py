"""EventBus in process: publish calls each subscriber of the detail-type in turn, as an
EventBridge rule would invoke its targets. A failing subscriber is logged, not raised, so
one target cannot stop the others (EventBridge retries targets independently)."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from ...ports import EventHandler

log = logging.getLogger(__name__)


class InProcessEventBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = defaultdict(list)

    def subscribe(self, detail_type: str, handler: EventHandler) -> None:
        self._handlers[detail_type].append(handler)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        for handler in self._handlers.get(detail_type, []):
            try:
                handler(detail)
            except Exception:
                log.exception("event handler %s failed for %s", handler, detail_type)
