"""Client options for the Azure SDK clients (Key Vault, Table Storage): bounded waits.

Why a transport rather than a retry policy: the Tables SDK builds its own `TablesRetryPolicy`
(it ignores `retry_policy=` and `per_retry_policies` for the table clients it hands out), while
every SDK client sends every attempt, retries and the Key Vault challenge round trip included,
through the transport. So the transport bounds the waits:

- each attempt's connect and read timeouts shrink to what is left of the thread's deadline
  (`shared.support.deadline.deadline`); an attempt past it fails at once;
- the whole answer arrives within that deadline, whatever trickles (the session's adapter is
  the outbound session's `DeadlineAdapter`), and no larger than `max_answer_bytes` when given;
- an answer whose Retry-After (seconds, HTTP date, `retry-after-ms`) would end at or past the
  deadline fails at once with `DeadlineExceeded` instead of being waited for, and so does every
  later attempt in the same deadline (the service asked for more time than is left);
- without a deadline, a Retry-After over `RETRY_AFTER_CAP` is presented as that cap, and one that
  is neither a number nor a date is dropped (the SDK would raise a bare ValueError);
- `sleep()` (the retry policy's wait, when the pipeline sleeps through this transport) never
  passes the deadline nor the cap.

`DeadlineExceeded` is an `AzureError`, so the stores turn it into `DependencyUnavailable` as
they do any unreachable backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import MutableMapping
from typing import Any

import requests
from azure.core.exceptions import ServiceRequestTimeoutError
from azure.core.pipeline.transport import RequestsTransport
from urllib3.util.retry import Retry

from shared.adapters.http.answer_bounds import DeadlineAdapter, mount
from shared.adapters.http.outbound import RETRY_AFTER_CAP, parse_retry_after
from shared.support.deadline import deadline_at
from shared.support.telemetry import throttled, waited

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
_SHORTEST_ATTEMPT = 0.001
_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")


class DeadlineExceeded(ServiceRequestTimeoutError):
    """The deadline of this piece of work passed, or would pass before the retry."""


def requested_wait(headers: MutableMapping[str, str]) -> float | None:
    """The wait an answer asks for, as azure-core reads it (Retry-After first, then the
    millisecond headers); None when it asks for none; -1 when the header is unreadable."""
    value = headers.get("retry-after")
    if value:
        wait = parse_retry_after(value)
        return -1 if wait is None else max(wait, 0.0)
    for name in _MS_HEADERS:
        value = headers.get(name)
        if value:
            try:
                return max(float(value) / 1000, 0.0)
            except ValueError:
                return -1
    return None


class DeadlineTransport(RequestsTransport):  # type: ignore[misc]  # lazily exported: Any
    """The SDK's requests transport, with every attempt and every wait inside the deadline."""

    def __init__(self, *, max_answer_bytes: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_answer_bytes = max_answer_bytes
        # The deadline (monotonic value) for which this thread was asked to wait too long.
        self._gave_up = threading.local()
        self._last = threading.local()  # the service whose last answer asked for a wait
        self.open()  # one session from the start: clients sharing this transport never race

    def _init_session(self, session: requests.Session) -> None:
        super()._init_session(session)
        # As azure-core's own adapter: no retries of its own (the SDK's policy retries).
        no_retries = Retry(total=False, redirect=False, raise_on_status=False)
        adapter = DeadlineAdapter(max_retries=no_retries, max_answer_bytes=self._max_answer_bytes)
        mount(session, adapter)

    def close(self) -> None:
        # Shared by every client built with these options, for the life of the process: a
        # client leaving its `with` block must not close it under the others.
        pass

    def _given_up(self, at: float) -> bool:
        return getattr(self._gave_up, "at", None) == at

    def send(self, request: Any, **kwargs: Any) -> Any:
        at = deadline_at()
        if at is not None:
            left = at - time.monotonic()
            if left <= 0 or self._given_up(at):
                raise DeadlineExceeded("the deadline for this piece of work has passed")
            config = self.connection_config
            connect = kwargs.get("connection_timeout") or config.timeout
            read = kwargs.get("read_timeout") or config.read_timeout
            kwargs["connection_timeout"] = max(min(connect, left), _SHORTEST_ATTEMPT)
            kwargs["read_timeout"] = max(min(read, left), _SHORTEST_ATTEMPT)
        response = super().send(request, **kwargs)
        service = _service_of(str(request.url))
        if response.status_code == 429:
            throttled(service)
        # The service the next sleep waits for, when this answer asked for a wait.
        asked = response.status_code >= 400 and (requested_wait(response.headers) or 0) > 0
        self._last.asked_by = service if asked else None
        if response.status_code >= 400:  # what azure-core retries when it names a wait
            self._bound_wait(response.headers, at)
        return response

    def _bound_wait(self, headers: MutableMapping[str, str], at: float | None) -> None:
        wait = requested_wait(headers)
        if wait is None:
            return
        if wait < 0:
            for name in ("retry-after", *_MS_HEADERS):
                headers.pop(name, None)
            return
        if at is not None and time.monotonic() + min(wait, RETRY_AFTER_CAP) >= at:
            self._gave_up.at = at
            raise DeadlineExceeded("the service asked to wait past this piece of work's deadline")
        if wait > RETRY_AFTER_CAP:
            for name in _MS_HEADERS:
                headers.pop(name, None)
            headers["retry-after"] = str(int(RETRY_AFTER_CAP))

    def sleep(self, duration: float) -> None:
        duration = min(duration, RETRY_AFTER_CAP)
        at = deadline_at()
        if at is not None and (time.monotonic() + duration >= at or self._given_up(at)):
            self._gave_up.at = at
            raise DeadlineExceeded("the wait before the retry would pass the deadline")
        if duration > 0:
            time.sleep(duration)
            asked_by = getattr(self._last, "asked_by", None)
            if asked_by is not None:  # a Retry-After waited, not a backoff
                waited(asked_by, duration)


def _service_of(url: str) -> str:
    """Key Vault (its keys and secrets) or Table Storage: the two services these clients call."""
    return "keyvault" if ".vault." in url or "/keys/" in url or "/secrets/" in url else "table"


def client_options(
    *,
    retries: int = 2,
    backoff: float = 0.3,
    backoff_max: float = 2.0,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    max_answer_bytes: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for an Azure SDK client: bounded retries over a `DeadlineTransport`.

    The transport in the answer is meant to be shared by every client of one store."""
    return {
        "retry_total": retries,
        "retry_backoff_factor": backoff,
        "retry_backoff_max": backoff_max,
        "transport": DeadlineTransport(
            connection_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_answer_bytes=max_answer_bytes,
        ),
    }
