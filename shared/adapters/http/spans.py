"""Spans and throttling metrics of outbound calls: one CLIENT span per call made through the
outbound session (`shared.adapters.http.outbound`), retries included.

A span names its host and a route TEMPLATE, never the path as sent nor a query string: ids,
tenant names and domains become `{id}` / `{tenant}`, so nothing a URL carries leaks and span
names stay few. The retries urllib3 made (its Retry history) are the span's retry count and
events; a Retry-After the session waited is recorded as `RETRY_AFTER_WAITED`, and each 429
answer as `THROTTLED`, per service. With no SDK configured the span is the API's no-op and the
URL is never parsed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.support.telemetry import (
    RETRIES,
    SERVICE,
    tracer,
    waited,
)
from shared.support.telemetry import throttled as count_throttled

# OpenTelemetry's semantic conventions (HTTP), and our own duration in milliseconds.
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"
SERVER_ADDRESS = "server.address"
URL_TEMPLATE = "url.template"
DURATION_MS = "m365link.duration_ms"
RETRY_EVENT = "retry"
WAITED = "m365link.retry_after.waited_s"  # on a retry event: the Retry-After waited, seconds

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_LITERAL = re.compile(r"[A-Za-z$][A-Za-z0-9_$-]{0,39}|v\d+\.\d+|\.well-known")
# The segments an Entra authority path has; the segment before them names the tenant.
_ENTRA = ("oauth2", "v2.0", "discovery")


def route_template(path: str) -> str:
    """`/contoso.com/oauth2/v2.0/token` → `/{tenant}/oauth2/v2.0/token`; `/v1.0/applications/
    <guid>/addKey` → `/v1.0/applications/{id}/addKey`. A segment kept is a plain word."""
    segments = path.split("/")
    out = []
    for i, segment in enumerate(segments):
        following = segments[i + 1] if i + 1 < len(segments) else ""
        if segment and segment not in _ENTRA and following in _ENTRA:
            out.append("{tenant}")
        elif not segment or (_LITERAL.fullmatch(segment) and not _GUID.fullmatch(segment)):
            out.append(segment)
        else:
            out.append("{id}")
    return "/".join(out)


def service_of(path: str) -> str:
    """The service a call of the outbound session goes to, by its route."""
    if "/oauth2/" in path or "/.well-known/" in path or "/discovery/" in path:
        return "entra"
    return "graph"


# The Retry-After waits of the call in progress (DeadlineRetry adds to it as it sleeps).
_waits: ContextVar[list[float] | None] = ContextVar("m365link_retry_after_waits", default=None)


def note_retry_after(seconds: float) -> None:
    waits = _waits.get()
    if waits is not None:
        waits.append(seconds)


@contextmanager
def outbound_call(method: str, url: str) -> Iterator[None]:
    """The span of one call of the outbound session; the response is read by `answered`."""
    waits: list[float] = []
    token = _waits.set(waits)
    # An exception's message and stack are never recorded (either can hold a URL or a value).
    span_cm = tracer().start_as_current_span("HTTP", kind=SpanKind.CLIENT, record_exception=False)
    started = time.perf_counter()
    try:
        with span_cm as span:
            parts = urlsplit(url) if span.is_recording() else None
            if parts is not None:
                route = route_template(parts.path)
                span.update_name(f"{method} {parts.hostname}{route}")
                span.set_attributes(
                    {
                        HTTP_METHOD: method,
                        SERVER_ADDRESS: parts.hostname or "",
                        URL_TEMPLATE: route,
                        SERVICE: service_of(parts.path),
                    }
                )
            yield
            if span.is_recording():
                span.set_attribute(DURATION_MS, round((time.perf_counter() - started) * 1000))
    finally:
        _waits.reset(token)
        _record_waits(url, waits)


def answered(response: Any) -> None:
    """Status and retries of the call's final answer on its span; its 429s counted."""
    from opentelemetry import trace

    history = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
    statuses = [entry.status for entry in history] + [response.status_code]
    throttled = statuses.count(429)
    path = urlsplit(response.url).path if throttled else ""
    if throttled:
        count_throttled(service_of(path), throttled)
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute(HTTP_STATUS, response.status_code)
    span.set_attribute(RETRIES, len(history))
    for number, entry in enumerate(history, 1):
        event = {RETRIES: number, HTTP_STATUS: entry.status or 0}
        span.add_event(RETRY_EVENT, {k: v for k, v in event.items() if v is not None})
    if response.status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _record_waits(url: str, waits: list[float]) -> None:
    if waits:
        service = service_of(urlsplit(url).path)
        for seconds in waits:
            waited(service, seconds)
