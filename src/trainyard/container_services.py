"""The services of one Lambda container.

Each function module (functions/*/handler.py) holds one `ContainerServices`: the composition
root's services are built from the environment on the first event the container handles and
kept for its later (warm) events. Building them there, not at import, keeps a cold start that
fails early, or answers without the store, from paying for bootstrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bootstrap import Services


class ContainerServices:
    def __init__(self) -> None:
        self._services: Services | None = None

    def __call__(self) -> Services:
        if self._services is None:
            from .bootstrap import bootstrap  # noqa: PLC0415 - see the module docstring
            from .settings import Settings  # noqa: PLC0415

            self._services = bootstrap(Settings())
        return self._services

    def forget(self) -> None:
        """Start again as a new container would (tests run many "containers" in one process)."""
        self._services = None
