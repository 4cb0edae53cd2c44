"""The one outbound HTTP session: timeouts on every call, bounded retries that honour Retry-After.

Everything that leaves the app over HTTPS (JWKS, the tenant's OpenID metadata, the token endpoint,
Microsoft Graph) goes through a session made here. `requests` honours REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0


_deadline = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every request this thread makes inside the block shares one deadline: each call's
    timeouts shrink to what is left, and a call past it fails at once as a timeout."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = previous


class TimeoutSession(requests.Session):
    """A Session whose every request has a timeout unless the caller gives one."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        connect, read = kwargs.pop("timeout", None) or self.default_timeout
        at = getattr(_deadline, "at", None)
        if at is not None:
            left = at - time.monotonic()
            if left <= 0:
                raise requests.Timeout("the deadline for this piece of work has passed")
            connect, read = min(connect, left), min(read, left)
        kwargs["timeout"] = (connect, read)
        return super().request(method, url, *args, **kwargs)


def make_session(
    *,
    retries: int = 3,
    backoff: float = 0.5,
    max_retry_after: float = 30.0,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    pool_size: int = 32,
) -> requests.Session:
    retry = Retry(
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
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "m365-link-functions/1.0"
    return session
