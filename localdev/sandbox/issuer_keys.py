"""The signing keys of outside OpenID issuers, fetched over HTTP and cached per issuer.

Why: Entra verifies a federated assertion with the keys it found at
`{issuer}/.well-known/openid-configuration` → `jwks_uri`, and it keeps those keys for a while
(FACTS §12: up to about 24 hours). An issuer that signs with a key it published after Entra cached
its JWKS is refused (AADSTS7000272) until the cache expires; the app's issuer key rotation must
survive exactly that, so the sandbox caches the same way (TTL settable, flushable by tests).
The fetch is real HTTP(S): HTTPS verified with the system / `REQUESTS_CA_BUNDLE` trust, plain
HTTP only to a loopback address (a test issuer), a short timeout.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

DEFAULT_TTL_SECONDS = 24 * 3600
FETCH_TIMEOUT_SECONDS = 5.0
# Entra keeps at most this many signing keys of an issuer (FACTS §12).
MAX_KEYS = 100


class IssuerUnreachable(Exception):
    """The discovery document or the JWKS could not be fetched or made no sense; says why."""


@dataclass(frozen=True)
class IssuerKeys:
    """An issuer's JWKS as fetched at `fetched_at`, by `kid`."""

    issuer: str
    jwks_uri: str
    keys: dict[str, dict[str, Any]]
    fetched_at: float

    def to_json(self, ttl_seconds: int) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwksUri": self.jwks_uri,
            "kids": sorted(self.keys),
            "fetchedAt": self.fetched_at,
            "expiresAt": self.fetched_at + ttl_seconds,
        }


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IssuerKeyCache:
    """Per-issuer JWKS with a time to live; `keys()` fetches when absent or expired."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._entries: dict[str, IssuerKeys] = {}
        self.ttl_seconds = DEFAULT_TTL_SECONDS
        self.fetches = 0  # HTTP fetches of discovery documents, for tests of the cache

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self.ttl_seconds = DEFAULT_TTL_SECONDS
            self.fetches = 0

    def flush(self, issuer: str | None = None) -> None:
        with self._lock:
            if issuer is None:
                self._entries.clear()
            else:
                self._entries.pop(issuer, None)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [entry.to_json(self.ttl_seconds) for entry in self._entries.values()]

    def keys(self, issuer: str) -> IssuerKeys:
        """The issuer's keys, from the cache while fresh; IssuerUnreachable when a fetch fails.

        Called without the sandbox's state lock: the fetch may take up to the timeout.
        """
        now = self._clock()
        with self._lock:
            cached = self._entries.get(issuer)
            if cached is not None and now < cached.fetched_at + self.ttl_seconds:
                return cached
            self.fetches += 1
        fetched = self._fetch(issuer, now)
        with self._lock:
            self._entries[issuer] = fetched  # a failed fetch caches nothing
        return fetched

    def _fetch(self, issuer: str, now: float) -> IssuerKeys:
        discovery = self._get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise IssuerUnreachable("the discovery document has no jwks_uri")
        jwks = self._get_json(jwks_uri)
        found = jwks.get("keys")
        if not isinstance(found, list):
            raise IssuerUnreachable("the JWKS has no keys array")
        keys = {
            str(key["kid"]): key
            for key in found[:MAX_KEYS]
            if isinstance(key, dict) and isinstance(key.get("kid"), str)
        }
        return IssuerKeys(issuer=issuer, jwks_uri=jwks_uri, keys=keys, fetched_at=now)

    @staticmethod
    def _get_json(url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        loopback = _loopback(parts.hostname)
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise IssuerUnreachable(f"{url} is neither https nor a loopback http URL")
        try:
            # A proxy from the environment must not carry a loopback fetch away.
            proxies = {"http": None, "https": None} if loopback else None
            response = requests.get(
                url,
                timeout=FETCH_TIMEOUT_SECONDS,
                allow_redirects=False,
                proxies=proxies,  # type: ignore[arg-type]
            )
        except requests.RequestException as error:
            raise IssuerUnreachable(f"{url}: {type(error).__name__}") from error
        if response.status_code != 200:
            raise IssuerUnreachable(f"{url} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise IssuerUnreachable(f"{url} did not answer JSON") from error
        if not isinstance(body, dict):
            raise IssuerUnreachable(f"{url} did not answer a JSON object")
        return body
