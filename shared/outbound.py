"""The one outbound HTTP session: timeouts on every call, bounded retries that honour Retry-After.

Everything that leaves the app over HTTPS (JWKS, the tenant's OpenID metadata, the token endpoint,
Microsoft Graph) goes through a session made here. `requests` honours REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0


class TimeoutSession(requests.Session):
    """A Session whose every request has a timeout unless the caller gives one."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.default_timeout)
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
