"""Spans around a request's stages, when something records them.

Without an exporter (the default, and whenever the ``tracing`` extra is not installed) this is
``NO_TRACING``: each hook returns one shared do-nothing object, and the request's trace context
(tracecontext.py: read, continued or started, sent to the app) is all that runs. With
``tracing.otlp_endpoint`` set, gatekeeper/otel.py records the spans and exports them by OTLP.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Protocol

from gatekeeper.exchange import Exchange
from gatekeeper.tracecontext import RequestSpan


class Tracing(Protocol):
    def begin(self, exchange: Exchange) -> RequestSpan | None:
        """The request's span, current until ``end``: the parent of every span below. Sets
        ``exchange.trace`` to the ids it records under."""

    def stage(self, name: str) -> AbstractContextManager[object]:
        """A span for one stage of the request (authenticate, authorize)."""

    def upstream(self, exchange: Exchange) -> AbstractContextManager[object]:
        """The hop to the app: its span id is the parent the app receives in traceparent."""

    def call(self, name: str, target: str) -> AbstractContextManager[object]:
        """A call gatekeeper makes on its own: the identity provider, Redis."""

    def shutdown(self) -> None:
        """Export what is still buffered (on exit)."""


_NOTHING = contextlib.nullcontext()


class NoTracing:
    def begin(self, exchange: Exchange) -> RequestSpan | None:
        return None

    def stage(self, name: str) -> AbstractContextManager[object]:
        return _NOTHING

    def upstream(self, exchange: Exchange) -> AbstractContextManager[object]:
        return _NOTHING

    def call(self, name: str, target: str) -> AbstractContextManager[object]:
        return _NOTHING

    def shutdown(self) -> None:
        return None


NO_TRACING: Tracing = NoTracing()
