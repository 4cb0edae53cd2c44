"""What happens to every non-admin request: added latency, injected faults, the request record.

Why: tests of retries, timeouts and throttling need the sandbox to be slow or to fail on demand,
tests of caching need to count calls, and tests of concurrency limits need the most requests that
were ever in flight at once (both ports, injected latency included). Doing it in one wrapper
around every service handler keeps the handlers about their service only; admin routes never
pass through here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from localdev.sandbox.state import Fault, RequestRecord, SandboxState
from localdev.sandbox.wire import (
    entra_error,
    error_code_of,
    graph_error,
    json_response,
    keyvault_error,
)

log = logging.getLogger("localdev.sandbox")

Handler = Callable[[Request], Response]

_GRAPH_FAULTS = {
    429: ("TooManyRequests", "Too many requests."),
    500: ("generalException", "General exception while processing."),
    502: ("badGateway", "Bad gateway."),
    503: ("serviceNotAvailable", "Service is unavailable. Try again later."),
    504: ("gatewayTimeout", "The gateway did not receive a timely response."),
}
_KEYVAULT_FAULTS = {
    429: (
        "Throttled",
        "Request was not processed because too many requests were received. "
        "Reason: VaultRequestTypeLimitReached",
    ),
    500: ("InternalServerError", "An internal server error occurred."),
    503: ("ServiceUnavailable", "The service is currently unavailable. Try again later."),
}


class Traffic:
    """Applies latency and faults to a request, calls its handler, and records the outcome."""

    def __init__(
        self, state: SandboxState, base_url: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._state = state
        self._base_url = base_url
        self._sleep = sleep
        self._flight_lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._max_in_flight_total = 0

    def in_flight(self) -> dict[str, Any]:
        """Requests being answered now, and the most ever at once since the last reset: in all
        (`max`) and per target (`maxByTarget`)."""
        with self._flight_lock:
            return {
                "now": sum(self._in_flight.values()),
                "max": self._max_in_flight_total,
                "maxByTarget": dict(self._max_in_flight),
            }

    def reset_in_flight(self) -> None:
        """Forget the maxima (requests still in flight keep counting)."""
        with self._flight_lock:
            self._max_in_flight = {t: n for t, n in self._in_flight.items() if n}
            self._max_in_flight_total = sum(self._in_flight.values())

    @contextmanager
    def _flying(self, target: str) -> Iterator[None]:
        with self._flight_lock:
            self._in_flight[target] = self._in_flight.get(target, 0) + 1
            self._max_in_flight[target] = max(
                self._max_in_flight.get(target, 0), self._in_flight[target]
            )
            self._max_in_flight_total = max(
                self._max_in_flight_total, sum(self._in_flight.values())
            )
        try:
            yield
        finally:
            with self._flight_lock:
                self._in_flight[target] -= 1

    def handle(self, request: Request, target: str, handler: Handler) -> Response:
        with self._flying(target):
            return self._handle(request, target, handler)

    def _handle(self, request: Request, target: str, handler: Handler) -> Response:
        started = time.monotonic()
        fault = self._state.take_fault(target, request.path)
        with self._state.lock:
            delay_ms = self._state.latency_ms + (fault.latency_ms if fault else 0)
        if delay_ms > 0:
            self._sleep(delay_ms / 1000)
        if fault is not None and fault.status is not None:
            response = self._fault_response(request, target, fault)
        else:
            try:
                response = handler(request)
            except HTTPException as error:  # e.g. a body over the size limit
                body = {"error": {"code": error.name, "message": error.description}}
                response = json_response(body, error.code or 500)
        duration_ms = round((time.monotonic() - started) * 1000)
        record = RequestRecord(
            target=target,
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            status=response.status_code,
            error=error_code_of(response),
            duration_ms=duration_ms,
        )
        self._state.record(record)
        log.info(
            "%s %s %s -> %d (%d ms)%s",
            target,
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            " [fault]" if fault is not None and fault.status is not None else "",
        )
        return response

    def _fault_response(self, request: Request, target: str, fault: Fault) -> Response:
        status = fault.status or 500
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if target in ("metadata", "token"):
            if status == 429:
                error, code = "temporarily_unavailable", 90055
                message = (
                    "TenantThrottlingError - There are too many incoming requests. "
                    "This exception is thrown for blocked tenants."
                )
            else:
                error = "temporarily_unavailable" if status >= 500 else "invalid_request"
                code = 50000
                message = "There was an error issuing a token or an issue with our sign-in service."
            return entra_error(
                request, self._base_url, status, error, code, message, headers=headers
            )
        if target == "graph":
            return graph_fault_response(request, fault)
        if target == "keyvault":
            code_text, message = _KEYVAULT_FAULTS.get(
                status,
                ("ServiceUnavailable" if status >= 500 else "BadParameter", "Injected fault."),
            )
            return keyvault_error(status, code_text, message, headers=headers)
        return json_response({"error": "injected fault"}, status, headers=headers)


def graph_fault_response(request: Request, fault: Fault) -> Response:
    """Graph's error answer for an injected fault (also each faulted `$batch` sub-request)."""
    status = fault.status or 500
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    code, message = _GRAPH_FAULTS.get(
        status, ("UnknownError" if status >= 500 else "BadRequest", "Injected fault.")
    )
    return graph_error(request, status, code, message, headers=headers)
