"""Where spans go: OTLP when ``tracing.otlp_endpoint`` is set (the SDK is an optional extra),
else nowhere."""

from __future__ import annotations

import importlib.util

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.tracing import NO_TRACING, Tracing

_OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


def tracing_problems(settings: Settings) -> list[str]:
    """Why the configured tracing cannot run here (checked at start, with the config)."""
    if settings.tracing.otlp_endpoint is None:
        return []
    missing = [name for name in _OTEL_MODULES if not _installed(name)]
    return [f"tracing.otlp_endpoint: needs the OpenTelemetry SDK ({', '.join(missing)} not "
            "installed): pip install 'gatekeeper[tracing]'"] if missing else []


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing, or cannot be imported
        return False


def configured_tracing(settings: Settings) -> Tracing:
    """The tracing ``settings.tracing`` asks for; ConfigError if it cannot run here."""
    if settings.tracing.otlp_endpoint is None:
        return NO_TRACING
    problems = tracing_problems(settings)
    if problems:
        raise ConfigError(problems)
    from gatekeeper import otel

    return otel.exporting(settings.tracing)
