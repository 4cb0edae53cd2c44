"""The issuer key ring: the keys that sign federated client assertions, their public JWKS, and
their lifecycle (API.md, "The issuer"; the decisions are shared.core.issuer_keys').

The keys live in the key store of the app's custody (under `vault-key` a non-exportable Key Vault
key), made and used like an account's; their records live in the account store, one per
generation. Any number of instances share them: each step is claimed or version-checked there,
and which key signs is a function of the records and the clock, so they all agree.

The published records are cached in memory for `ttl` (never an empty answer, so the first key
shows at once): the JWKS and the choice of signer cost the key store nothing and the account
store one read per `ttl`. A stale cache is harmless: a new key is published a day before it
signs, and a key leaves the JWKS a day after its successor took over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.accountstore.base import IssuerKeyRecords, VersionConflict
from shared.adapters.issuer.steps import Hook, Writer
from shared.adapters.keystore.base import KeyStore, PrivateKeyMissing, UnusableKey
from shared.core.errors import AppError, DependencyUnavailable
from shared.core.issuer_keys import IssuerKey, first_key, next_step, published, signing_key
from shared.support import telemetry as t
from shared.support.deadline import time_left

log = logging.getLogger("m365link.issuer")
JWKS_TTL = timedelta(seconds=60)
UPKEEP_STEPS = 8  # a pass does at most this many steps (two or three in the worst crash case)
# ensure() waits this long at most for another instance making the first key.
ENSURE_WAIT_SECONDS = 10.0
_ENSURE_PAUSE = 0.25


class IssuerKeyUnavailable(DependencyUnavailable):
    """No issuer key can sign now (none made yet, or its store cannot sign): a 503."""

    def __init__(self, detail: str) -> None:
        super().__init__("issuer key", detail, retry_after=5)


@dataclass
class IssuerUpkeep:
    """What one upkeep pass did: keys published and retired, races lost to another instance
    (which did that step), and the failure that stopped it, if any (its detail: no secret)."""

    published: int = 0
    retired: int = 0
    lost_races: int = 0
    stopped: str | None = None
    actions: list[str] = field(default_factory=list)


class IssuerKeyring:
    def __init__(
        self,
        records: IssuerKeyRecords,
        key_store: Callable[[str], KeyStore],
        custody: str,
        *,
        rotation: timedelta,
        store_identity: str,
        now: Callable[[], datetime],
        hook: Hook | None = None,
        ttl: timedelta = JWKS_TTL,
    ) -> None:
        self._records = records
        self._key_store = key_store
        self._rotation = rotation
        self._now = now
        self._ttl = ttl
        self._writer = Writer(records, key_store, custody, store_identity, now, hook or _no_hook)
        self._lock = threading.Lock()
        self._cached: list[IssuerKey] = []
        self._cached_until: datetime | None = None

    # --- reading: the JWKS, the signer, health --------------------------------------------
    def published_keys(self) -> list[IssuerKey]:
        """The published records, from the cache while it is fresh (by the ring's clock)."""
        with self._lock:
            if self._cached_until is not None and self._now() < self._cached_until:
                return self._cached
        return self._remember(self._records.issuer_keys())

    def _remember(self, records: list[IssuerKey]) -> list[IssuerKey]:
        """Cache what a read of the records found published (an empty answer only as what
        this process knows, never as a fresh answer)."""
        keys = published(records)
        with self._lock:
            self._cached = keys
            self._cached_until = self._now() + self._ttl if keys else None
        return keys

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """`{"keys": [...]}`: the published keys' public members, oldest first."""
        return {"keys": [key.public_jwk() for key in self.published_keys()]}

    def signer(self) -> tuple[str, rsa.RSAPrivateKey]:
        """(kid, sign-only key) of the key that signs now. Raises IssuerKeyUnavailable."""
        key = signing_key(self.published_keys(), self._now())
        if key is None:
            raise IssuerKeyUnavailable("the issuer has no key that signs yet")
        try:
            return key.kid, self._key_store(key.custody).signer(key.key_id)
        except (PrivateKeyMissing, UnusableKey) as exc:
            log.error("issuer key cannot sign kid=%s reason=%s", key.kid, type(exc).__name__)
            raise IssuerKeyUnavailable("the issuer key is missing from the key store") from exc

    def health(self) -> dict[str, object] | None:
        """`{"status": "ok", "keys": N}` once the issuer has a key, else None. What this process
        last read (the JWKS, a signature, `ensure`, each timer run's upkeep read the records):
        the health probe stays one point read of each store, and reads the records at most
        once per `ttl`, and only for an app that has an issuer key."""
        with self._lock:
            known = self._cached
        keys = self.published_keys() if known else []
        self._record_key_age(keys)
        return {"status": "ok", "keys": len(keys)} if keys else None

    def _record_key_age(self, keys: list[IssuerKey]) -> None:
        """How long the key that signs now has signed (seconds since its `use_from`), as the
        gauge an operator watches for a rotation that stopped; nothing before a key signs."""
        key = signing_key(keys, self._now())
        if key is not None and key.use_from is not None:
            age = max((self._now() - key.use_from).total_seconds(), 0.0)
            t.gauge(t.ISSUER_KEY_AGE, "s", "how long the signing issuer key has signed").set(age)

    # --- writing: the first key, and the timer's upkeep -----------------------------------
    def ensure(self) -> None:
        """Make the first key (it signs at once) unless one exists; when another caller is
        making it, wait for it a little. Safe to call from any number of callers at once.
        Raises IssuerKeyUnavailable when no key is there in time, or what the stores raised."""
        waited_until = time.monotonic() + _bounded(ENSURE_WAIT_SECONDS)
        while True:
            records = self._records.issuer_keys()
            if self._remember(records):
                return
            step = first_key(records, self._now())
            if step is not None:
                try:
                    self._writer.take(step)
                    continue
                except VersionConflict:
                    pass  # another caller got there first: read again, after a pause
            if time.monotonic() + _ENSURE_PAUSE > waited_until:
                raise IssuerKeyUnavailable("the issuer key is being made; try again shortly")
            time.sleep(_ENSURE_PAUSE)

    def upkeep(self, stop_at: float | None = None) -> IssuerUpkeep:
        """One pass of the lifecycle: each step due now, until none is or `stop_at` (a
        `time.monotonic()` deadline) passes. Never raises: a failure ends the pass, logged,
        and the next pass goes on from the records."""
        done = IssuerUpkeep()
        try:
            for _ in range(UPKEEP_STEPS):
                if stop_at is not None and time.monotonic() >= stop_at:
                    break
                records = self._records.issuer_keys()
                self._remember(records)
                step = next_step(records, self._now(), self._rotation)
                if step is None:
                    break
                try:
                    action = self._writer.take(step)
                except VersionConflict:
                    done.lost_races += 1
                    continue
                finally:
                    self._forget()
                done.actions.append(action)
                done.published += action == "published"
                done.retired += action == "retired"
        except AppError as error:
            done.stopped = error.detail
            log.warning("issuer key upkeep stopped: %s", error.detail)
        with self._lock:
            known = self._cached  # what the pass last read
        self._record_key_age(known)
        return done

    def _forget(self) -> None:
        with self._lock:
            self._cached_until = None


def _bounded(seconds: float) -> float:
    left = time_left()
    return seconds if left is None else max(0.0, min(seconds, left))


def _no_hook(name: str) -> None:
    return None
