"""Where the app's telemetry goes, decided once per process from the environment.

- `APPLICATIONINSIGHTS_CONNECTION_STRING`: the Azure Monitor distro, sending with the app's
  managed identity (local auth is disabled on the Application Insights resource); of the
  distro's instrumentations only the Azure SDK's is on (the outbound session makes its own
  spans, with route templates and never a query string).
- else `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` /
  `OTEL_LOGS_EXPORTER` naming `otlp`): the SDK with OTLP/HTTP exporters, batched.
- else `M365LINK_TELEMETRY_CONSOLE=1` (for `make run`): the SDK printing to the console.
- else nothing: no SDK is installed and every call of `shared.support.telemetry` is the API's
  no-op.

Traces, metrics and the `m365link` loggers' records go through the same pipeline, so a log
record carries the trace and span ids of the work that wrote it. No setting's value is ever
logged (the connection string holds the instrumentation key).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.support.telemetry import SCOPE, tracer

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
CONSOLE = "M365LINK_TELEMETRY_CONSOLE"
DEFAULT_SERVICE_NAME = "m365-link"
_OTLP_SELECTORS = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER")
_OTLP_ENDPOINTS = tuple(
    f"OTEL_EXPORTER_OTLP{signal}_ENDPOINT" for signal in ("", "_TRACES", "_METRICS", "_LOGS")
)
# The distro's instrumentations we do not want: our session makes the outbound spans.
_DISTRO_OFF = ("requests", "urllib", "urllib3", "django", "fastapi", "flask", "psycopg2")

log = logging.getLogger("m365link.telemetry")
_lock = threading.Lock()
_mode: str | None = None


def mode_of(env: Mapping[str, str]) -> str:
    """`azure-monitor`, `otlp`, `console` or `off`, as the environment asks."""
    if env.get(CONNECTION_STRING, "").strip():
        return "azure-monitor"
    if any(env.get(name, "").strip() for name in _OTLP_ENDPOINTS) or any(
        env.get(name, "").strip().lower() == "otlp" for name in _OTLP_SELECTORS
    ):
        return "otlp"
    if env.get(CONSOLE, "").strip().lower() in ("1", "true", "yes"):
        return "console"
    return "off"


def configure(
    env: Mapping[str, str] | None = None,
    credential: Callable[[], TokenCredential] | None = None,
) -> str:
    """Set up telemetry once per process as `env` (default: the process environment) asks;
    later calls change nothing. `credential` makes the managed identity's credential, used only
    for Azure Monitor. Returns the mode in force."""
    global _mode
    with _lock:
        if _mode is not None:
            return _mode
        env = os.environ if env is None else env
        mode = mode_of(env)
        if mode == "azure-monitor":
            _azure_monitor(env, credential)
        elif mode != "off":
            tracing, metering, logging_ = _sdk(env, console=mode == "console")
            install(tracing, metering, logging_)
        _mode = mode
    if mode != "off":
        log.info("telemetry exported (%s)", mode)  # the mode only, never a setting's value
    return mode


def install(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    logger_provider: LoggerProvider | None = None,
) -> None:
    """Make these the process's providers (once per process: OpenTelemetry's rule), send the
    `m365link` loggers' records through `logger_provider`, and turn on the Azure SDK's spans.
    Tests install their in-memory SDK through here too."""
    from opentelemetry import metrics, trace

    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    if logger_provider is not None:
        from opentelemetry._logs import set_logger_provider

        set_logger_provider(logger_provider)
        logging.getLogger(SCOPE).addHandler(_log_handler(logger_provider))
    enable_azure_sdk_tracing()


def _log_handler(provider: LoggerProvider) -> logging.Handler:
    """The logging bridge (opentelemetry-instrumentation-logging's, which the Azure Monitor
    distro brings; the SDK's own one is deprecated): each record with its trace and span."""
    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
    except ImportError:  # pragma: no cover - the distro requires it
        from opentelemetry.sdk._logs import LoggingHandler  # type: ignore[assignment]
    return LoggingHandler(logger_provider=provider)


def enable_azure_sdk_tracing() -> None:
    """Key Vault and Table Storage calls as spans (azure-core-tracing-opentelemetry)."""
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry"


def _resource(env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    name = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    return Resource.create({SERVICE_NAME: name})


def _sdk(env: Mapping[str, str], *, console: bool) -> tuple[Any, Any, Any]:
    """Tracer, meter and logger providers with batched exporters: OTLP/HTTP (which reads the
    standard `OTEL_EXPORTER_OTLP_*` variables itself), or the console."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if console:
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        spans: Any = ConsoleSpanExporter()
        metrics: Any = ConsoleMetricExporter()
        logs: Any = ConsoleLogRecordExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        spans, metrics, logs = OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()
    resource = _resource(env)
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(BatchSpanProcessor(spans))
    metering = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(metrics)]
    )
    logging_ = LoggerProvider(resource=resource)
    logging_.add_log_record_processor(BatchLogRecordProcessor(logs))
    return tracing, metering, logging_


def _azure_monitor(
    env: Mapping[str, str], credential: Callable[[], TokenCredential] | None
) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {
        "connection_string": env[CONNECTION_STRING].strip(),
        "logger_name": SCOPE,
        "resource": _resource(env),
        "instrumentation_options": {name: {"enabled": False} for name in _DISTRO_OFF},
        "enable_live_metrics": False,
    }
    if credential is not None:
        options["credential"] = credential()  # identity-based ingestion
    configure_azure_monitor(**options)
    enable_azure_sdk_tracing()


# --- the span of one function invocation -------------------------------------------------------
FUNCTION = "faas.invoked_name"
TRIGGER_KIND = "faas.trigger"


def host_parent(context: Any) -> Any:
    """The trace context the Functions host passed (`context.trace_context`), or None."""
    carrier = {}
    trace_context = getattr(context, "trace_context", None)
    parent = getattr(trace_context, "trace_parent", None)
    if not parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier["traceparent"] = parent
    state = getattr(trace_context, "trace_state", None)
    if state:
        carrier["tracestate"] = state
    return TraceContextTextMapPropagator().extract(carrier)


@contextmanager
def invocation(name: str, function: str, trigger: str, context: Any = None) -> Iterator[Any]:
    """A SERVER span around one invocation of `function`, the host's trace its parent. An
    exception's message and stack are never recorded on it (either can hold a value)."""
    from opentelemetry.trace import SpanKind

    span_cm = tracer().start_as_current_span(
        name,
        context=host_parent(context),
        kind=SpanKind.SERVER,
        attributes={FUNCTION: function, TRIGGER_KIND: trigger},
        record_exception=False,
    )
    with span_cm as span:
        yield span
