"""The `http_client` MSAL is given: the shared session, with tenant OpenID metadata served from
a bounded cache.

Discovery is fetched once per tenant (also when many threads verify its accounts at once) and
kept for an hour, so a warm verification skips it and the `tenant` check's read
(`TenantClient.metadata`, through the same adapter) is never fetched twice. A token endpoint
still unavailable after the session's retries is raised as `TransientHttpError`, for the tenant
client to answer as transient.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import requests

METADATA_TTL_SECONDS = 3600
METADATA_CACHE_ENTRIES = 4096  # tenants; ~2 KB each
WELL_KNOWN = "/v2.0/.well-known/openid-configuration"


class TransientHttpError(Exception):
    """The token endpoint stayed unavailable (429/5xx) after the session's retries."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class MetadataCache:
    """Tenant metadata by URL, least recently used evicted first, one entry at a time; the
    per-URL fetch locks are bounded the same way (a lock in use is never evicted)."""

    def __init__(
        self, ttl: float = METADATA_TTL_SECONDS, max_entries: int = METADATA_CACHE_ENTRIES
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, requests.Response]] = OrderedDict()
        self._fetching: OrderedDict[str, threading.Lock] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def fetch_locks(self) -> int:
        return len(self._fetching)

    def get(self, url: str) -> requests.Response | None:
        with self._lock:
            entry = self._entries.get(url)
            if entry and time.monotonic() - entry[0] < self._ttl:
                self._entries.move_to_end(url)
                return entry[1]
            self._entries.pop(url, None)
            return None

    def lock_for(self, url: str) -> threading.Lock:
        with self._lock:
            lock = self._fetching.get(url)
            if lock is None:
                lock = self._fetching[url] = threading.Lock()
            self._fetching.move_to_end(url)
            while len(self._fetching) > self._max:
                idle = (u for u, held in self._fetching.items() if u != url and not held.locked())
                victim = next(idle, None)
                if victim is None:  # every other lock is held: over the bound until one frees
                    break
                del self._fetching[victim]
            return lock

    def put(self, url: str, response: requests.Response) -> None:
        with self._lock:
            self._entries[url] = (time.monotonic(), response)
            self._entries.move_to_end(url)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class MsalHttp:
    """The `http_client` MSAL is given: our session, with discovery served from the cache."""

    def __init__(self, session: requests.Session, metadata: MetadataCache) -> None:
        self._session = session
        self._metadata = metadata

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        cached = self._metadata.get(url)
        if cached is not None:
            return cached
        if not url.endswith(WELL_KNOWN):
            return self._session.get(url, **kwargs)
        # One fetch per tenant even when many threads verify its accounts at once.
        with self._metadata.lock_for(url):
            cached = self._metadata.get(url)
            if cached is not None:
                return cached
            response = self._session.get(url, **kwargs)
            if response.status_code == 200:
                self._metadata.put(url, response)
            return response

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        response = self._session.post(url, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientHttpError(response.status_code)
        return response

    def close(self) -> None:  # MSAL may call it; the session outlives the app object
        pass
