"""One in-memory OpenTelemetry SDK for the whole pytest session (the global providers can be set
once per process), installed through the app's own `shared.app.telemetry.install`.

Every exported span (name, attributes, events) and log record (body, attributes) is kept as
text for `zz_final/test_no_secrets.py`; the last few thousand are kept whole for the tests to
read (`spans()`, `logs()`, `clear()`); metrics are read from an `InMemoryMetricReader`
(cumulative, so every attribute set of the run is there at the end).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

KEEP = 5000  # whole spans and log records kept for the tests to read

# (metric name, its attributes as sorted pairs) -> a counter's sum, a histogram's count, a gauge
Points = dict[tuple[str, tuple[tuple[str, Any], ...]], float]


def span_text(span: ReadableSpan) -> str:
    lines = [f"span {span.name}"]
    lines += [f"  {k}={v}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        lines.append(f"  event {event.name}")
        lines += [f"    {k}={v}" for k, v in (event.attributes or {}).items()]
    if span.status.description:
        lines.append(f"  status {span.status.description}")
    return "\n".join(lines)


def log_text(readable: ReadableLogRecord) -> str:
    record = readable.log_record
    lines = [f"log record {record.body}"]
    lines += [f"  {k}={v}" for k, v in (record.attributes or {}).items()]
    return "\n".join(lines)


class _Spans(SpanExporter):
    def __init__(self, sink: Telemetry) -> None:
        self._sink = sink

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._sink.keep_span(span)
        return SpanExportResult.SUCCESS


class _Logs(LogRecordExporter):
    def __init__(self, sink: Telemetry) -> None:
        self._sink = sink

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        for record in batch:
            self._sink.keep_log(record)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        return True


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: deque[ReadableSpan] = deque(maxlen=KEEP)
        self._logs: deque[ReadableLogRecord] = deque(maxlen=KEEP)
        self.texts: list[str] = []
        self.reader = InMemoryMetricReader()
        self.installed = False

    def install(self) -> None:
        from shared.app import telemetry

        resource = Resource.create({SERVICE_NAME: "m365-link-tests"})
        tracing = TracerProvider(resource=resource)
        tracing.add_span_processor(SimpleSpanProcessor(_Spans(self)))
        logging_ = LoggerProvider(resource=resource)
        logging_.add_log_record_processor(SimpleLogRecordProcessor(_Logs(self)))
        metering = MeterProvider(resource=resource, metric_readers=[self.reader])
        telemetry.install(tracing, metering, logging_)
        self.installed = True

    def keep_span(self, span: ReadableSpan) -> None:
        with self._lock:
            self._spans.append(span)
            self.texts.append(span_text(span))

    def keep_log(self, record: ReadableLogRecord) -> None:
        with self._lock:
            self._logs.append(record)
            self.texts.append(log_text(record))

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._logs.clear()

    def spans(self) -> list[ReadableSpan]:
        with self._lock:
            return list(self._spans)

    def logs(self) -> list[ReadableLogRecord]:
        with self._lock:
            return list(self._logs)

    def metrics(self) -> Points:
        """Every metric point of the run so far (cumulative)."""
        points: Points = {}
        for name, attributes, point in self._points():
            value = point.count if isinstance(point, HistogramDataPoint) else point.value
            points[(name, tuple(sorted(attributes.items())))] = value
        return points

    def metric_attribute_texts(self) -> list[str]:
        return [
            f"metric {name} " + " ".join(f"{k}={v}" for k, v in attributes.items())
            for name, attributes, _ in self._points()
        ]

    def _points(self) -> Iterator[tuple[str, dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        yield metric.name, dict(point.attributes or {}), point


def moved(before: Points, after: Points, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
    """How each attribute set of metric `name` moved between two readings."""
    return {
        attrs: value - before.get((metric, attrs), 0)
        for (metric, attrs), value in after.items()
        if metric == name and value != before.get((metric, attrs), 0)
    }


TELEMETRY = Telemetry()
