"""The portal issuer's signing keys (JWKS): fetched through one bounded session, cached, refreshed
early for an unknown `kid` but at most once per interval, with back-off after failures."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared.adapters.http.answer_bounds import DeadlineAdapter, mount
from shared.core.errors import DependencyUnavailable
from shared.support.deadline import deadline

ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
JWKS_TTL = 3600  # signing keys roll over rarely; an unknown kid triggers an early refresh
JWKS_MIN_INTERVAL = 30  # at most one fetch per 30 s, whatever kids callers send (API.md)
JWKS_MAX_BACKOFF = 300  # after failures the interval doubles up to this
JWKS_TIMEOUT = (3.0, 5.0)  # connect, read: a slow issuer must not hold requests for long
JWKS_MAX_BYTES = 256 * 1024  # Entra's JWKS is a few kB; a bigger answer is not a key set
_MIN_RSA_BITS = 2048

log = logging.getLogger("m365link.identity")


def jwks_session() -> requests.Session:
    """A session for the JWKS alone: no retries (the cache's interval is the retry policy, and a
    request must not wait through someone else's back-off), short timeouts set per call, and an
    answer no larger than a key set."""
    session = requests.Session()
    mount(session, DeadlineAdapter(max_retries=0, max_answer_bytes=JWKS_MAX_BYTES))
    session.headers["User-Agent"] = "m365-link-functions/1.0"
    return session


class JwksInvalid(ValueError):
    """The issuer answered, but not with a usable key set."""


def parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    """The RSA signing keys of a JWKS document, by kid; raises JwksInvalid when it holds none.

    Entries of other key types or for encryption are skipped (a JWKS may list them); an answer
    that is not a key set at all, or holds no usable key, is a failed fetch, so it never replaces
    the keys already known."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksInvalid("not a JWKS object with a keys array")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            raise JwksInvalid("a keys entry is not an object")
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or not kid
            or entry.get("kty") != "RSA"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", "RS256") not in ALLOWED_ALGORITHMS
        ):
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        # A private key (a JWKS published by mistake) or a toy key size is not a signing key.
        if isinstance(key.key, RSAPublicKey) and key.key.key_size >= _MIN_RSA_BITS:
            keys[kid] = key
    if not keys:
        raise JwksInvalid("no usable RSA signing key")
    return keys


class JwksCache:
    """The issuer's signing keys, with last-known-good keys and a bounded refresh rate.

    Keys are refreshed after `JWKS_TTL`, or early when a token names an unknown kid, but never
    more than once per `JWKS_MIN_INTERVAL` (longer after failures). A failed refresh keeps the
    keys already known; only with no key known at all is a failed fetch a 503."""

    def __init__(
        self,
        uri: str,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = uri
        self._session = session or jwks_session()
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fresh_until = -math.inf
        self._next_attempt = -math.inf
        self._failures = 0
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`, None when the issuer does not publish it; raises
        DependencyUnavailable only when no key is known and the issuer cannot be read."""
        known = self._keys.get(kid)
        if known is not None:
            if self._clock() >= self._fresh_until and self._lock.acquire(blocking=False):
                # Stale: one caller refreshes, the others go on with the key they have.
                try:
                    self._refresh_if_due()
                finally:
                    self._lock.release()
            return self._keys.get(kid)
        with self._lock:
            if kid not in self._keys:
                self._refresh_if_due()
            if not self._keys:
                wait = max(1, math.ceil(self._next_attempt - self._clock()))
                raise DependencyUnavailable(
                    "token signing keys",
                    "the token issuer's signing keys could not be fetched; try again shortly",
                    retry_after=wait,
                )
            return self._keys.get(kid)

    def _refresh_if_due(self) -> None:
        """Fetch once if the interval allows it (callers hold the lock)."""
        now = self._clock()
        if now < self._next_attempt:
            return
        try:
            keys = self._fetch()
        except (requests.RequestException, ValueError, RecursionError) as failure:
            self._failures += 1
            backoff = min(JWKS_MIN_INTERVAL * 2 ** (self._failures - 1), JWKS_MAX_BACKOFF)
            self._next_attempt = now + backoff
            log.warning(
                "token signing keys could not be fetched (%s); %d key(s) kept, next try in %d s",
                type(failure).__name__,
                len(self._keys),
                backoff,
            )
            return
        self._keys = keys
        self._failures = 0
        self._fresh_until = now + JWKS_TTL
        self._next_attempt = now + JWKS_MIN_INTERVAL

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        # The whole answer within the caller's deadline and this fetch's own (the session's
        # adapter bounds every read by it, and the answer's size).
        with deadline(sum(JWKS_TIMEOUT)):
            response = self._session.get(
                self._uri, timeout=JWKS_TIMEOUT, headers={"Accept": "application/json"}
            )
        response.raise_for_status()
        return parse_jwks(json.loads(response.content))
