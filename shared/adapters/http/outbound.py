"""The one outbound HTTP session: timeouts on every call, bounded retries that honour Retry-After,
a CLIENT span per call (`shared.adapters.http.spans`).

Everything that leaves the app over HTTPS (JWKS, the tenant's OpenID metadata, the token endpoint,
Microsoft Graph) goes through a session made here. `requests` honours REQUESTS_CA_BUNDLE.

Every wait is bounded by the deadline of its unit of work (`deadline()`, per thread): each attempt's
connect and read timeouts shrink to what is left, retries included, and a retry whose wait
(Retry-After or backoff) would end past the deadline is not made: the last answer comes back as
data at once. Without a deadline a Retry-After is still capped (`RETRY_AFTER_CAP`).

A socket's read timeout bounds one read only; the whole answer is bounded by the session's
transport adapter (`shared.adapters.http.answer_bounds.DeadlineAdapter`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import requests
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from shared.adapters.http import spans
from shared.adapters.http.answer_bounds import DeadlineAdapter, mount
from shared.support.deadline import deadline_at, time_left

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
RETRY_AFTER_CAP = 30.0  # a server asking for longer is answered as it answered, not waited for
_SHORTEST_ATTEMPT = 0.001  # a socket timeout must be positive; this one fails at once


class DeadlineTimeout(Timeout):
    """urllib3 timeouts that shrink, at every attempt, to what is left before a deadline.

    urllib3 clones the timeout for each attempt and reads `connect_timeout` / `read_timeout`
    when it connects and before it reads, so a retry after a sleep gets only what is left."""

    def __init__(self, connect: float, read: float, at: float | None) -> None:
        super().__init__(connect=connect, read=read)
        self.deadline_at = at

    def clone(self) -> DeadlineTimeout:
        return DeadlineTimeout(self._connect, self._read, self.deadline_at)  # type: ignore[arg-type]

    def _bounded(self, value: Any) -> Any:
        if self.deadline_at is None or not isinstance(value, int | float):
            return value
        return max(min(value, self.deadline_at - time.monotonic()), _SHORTEST_ATTEMPT)

    @property
    def connect_timeout(self) -> Any:
        return self._bounded(self._connect)

    @property
    def read_timeout(self) -> float | None:
        return self._bounded(self._read)  # type: ignore[no-any-return]


_READER = Retry(total=0)


class DeadlineRetry(Retry):
    """urllib3's Retry, with every wait between attempts bounded.

    A Retry-After is capped at `retry_after_cap`; a retry whose wait would end at or past this
    thread's deadline is refused (urllib3 then hands back the last response, or raises the last
    error), so the caller answers within its deadline instead of sleeping through it."""

    retry_after_cap: float = RETRY_AFTER_CAP

    def new(self, **kw: Any) -> DeadlineRetry:
        retry = super().new(**kw)
        retry.retry_after_cap = self.retry_after_cap
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.retry_after_cap)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:  # neither seconds nor a date: back off as if it were absent
            return None

    def planned_wait(self, response: BaseHTTPResponse | None) -> float:
        """What `sleep(response)` will wait: Retry-After when honoured and given, else backoff."""
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                return retry_after
        return self.get_backoff_time()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> DeadlineRetry:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(retry, DeadlineRetry)
        left = time_left()
        if left is not None and retry.planned_wait(response) >= left:
            reason = error or ResponseError(
                "the deadline for this piece of work would pass before the retry"
            )
            raise MaxRetryError(_pool, url or "", reason) from error
        return retry

    def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
        retry_after = self.get_retry_after(response)
        if not retry_after:
            return False
        spans.note_retry_after(self._sleep_bounded(retry_after))
        return True

    def _sleep_backoff(self) -> None:
        self._sleep_bounded(self.get_backoff_time())

    @staticmethod
    def _sleep_bounded(seconds: float) -> float:
        left = time_left()
        if left is not None:
            seconds = min(seconds, left)
        if seconds > 0:
            time.sleep(seconds)
        return max(seconds, 0.0)


def parse_retry_after(value: str) -> float | None:
    """The seconds a Retry-After asks for (a number of seconds, or an HTTP date as urllib3 reads
    it), uncapped; None when it is neither. One reader for the session, Graph's batch and the
    Azure SDK transport."""
    try:
        seconds = float(value)  # azure-core reads fractions and negatives too
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        return Retry.parse_retry_after(_READER, value)  # an HTTP date
    except InvalidHeader:
        return None


def json_object(response: requests.Response) -> dict[str, Any]:
    """A response's JSON body when it is an object, else `{}`: what a server answers is never
    trusted to be what its documentation says."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _timeout_pair(value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if isinstance(value, tuple):
        connect, read = value
        return (default[0] if connect is None else connect, default[1] if read is None else read)
    return (value, value)


class TimeoutSession(requests.Session):
    """A Session whose every request has a timeout unless the caller gives one, bounded by the
    thread's deadline at every attempt."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        connect, read = _timeout_pair(kwargs.pop("timeout", None), self.default_timeout)
        at = deadline_at()
        if at is not None and at - time.monotonic() <= 0:
            raise requests.Timeout("the deadline for this piece of work has passed")
        kwargs["timeout"] = DeadlineTimeout(connect, read, at)
        verb = method.decode() if isinstance(method, bytes) else method
        with spans.outbound_call(verb.upper(), url.decode() if isinstance(url, bytes) else url):
            response = super().request(method, url, *args, **kwargs)
            spans.answered(response)
            return response


def make_session(
    *,
    retries: int = 3,
    backoff: float = 0.5,
    max_retry_after: float = RETRY_AFTER_CAP,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    pool_size: int = 32,
) -> requests.Session:
    retry = DeadlineRetry(
        total=retries,
        connect=retries,
        read=1,
        status=retries,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),  # token and Graph reads are safe to repeat
        backoff_factor=backoff,
        backoff_max=max_retry_after,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back as data for the caller to judge
    )
    retry.retry_after_cap = max_retry_after
    session = TimeoutSession(timeout)
    mount(
        session,
        DeadlineAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size),
    )
    session.headers["User-Agent"] = "m365-link-functions/1.0"
    return session
