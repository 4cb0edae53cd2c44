"""The issuer key's lifecycle as data and pure decisions: no I/O.

The app is an OpenID issuer (API.md, "The issuer"); one RSA key at a time signs its federated
client assertions. Each key is one record, numbered by generation; a record moves
`claimed` (the generation taken by one instance; its key may not exist yet) -> `published` (its
public half recorded: it is in the JWKS, and signs from `use_from`) -> `deleting` (out of the
JWKS, never signs again; its key and record are being removed).

Entra caches an issuer's keys for up to 24 hours, hence the overlap: a new key is published
`PUBLISH_LEAD` before it signs, and a replaced one stays published `RETAIN_AFTER` after it
signed last (which is when its successor began to sign). Which key signs is a function of the
records and the clock alone, so every instance picks the same key without talking to the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

CLAIMED, PUBLISHED, DELETING = "claimed", "published", "deleting"
STATES = (CLAIMED, PUBLISHED, DELETING)

ENTRA_KEY_CACHE = timedelta(hours=24)
ASSERTION_LIFETIME = timedelta(minutes=10)  # a federated assertion's exp - iat
# The JWKS travels through caches before Entra reads it: each instance's memory (a minute) and
# HTTP caches honouring its Cache-Control (max-age at most 3600 s).
JWKS_CACHES = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)  # between instances, and between us and Entra
PUBLISH_LEAD = ENTRA_KEY_CACHE + JWKS_CACHES
RETAIN_AFTER = ENTRA_KEY_CACHE + ASSERTION_LIFETIME + CLOCK_SKEW
# A claim not published after this was left by an instance that died (a key is made in seconds;
# the keyring bounds each step far below this): it is removed and the generation taken again.
CLAIM_STALE = timedelta(minutes=15)


@dataclass(frozen=True)
class IssuerKey:
    """One generation of the issuer key. `key_id` names it in the key store of `custody`;
    `kid`, `n` and `e` (base64url, RFC 7518) are its public half, set when it is published.
    `version` is the store's (an ETag or a counter): every change names the one it read."""

    generation: int
    key_id: str
    custody: str
    state: str
    claimed_at: datetime
    kid: str = ""
    n: str = ""
    e: str = ""
    published_at: datetime | None = None
    use_from: datetime | None = None
    version: str = ""

    @property
    def complete(self) -> bool:
        """Published with its public half: only such a key is in the JWKS or signs."""
        return self.state == PUBLISHED and bool(self.kid and self.n and self.e and self.use_from)

    def public_jwk(self) -> dict[str, str]:
        """The JWKS entry: public members only."""
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        }


@dataclass(frozen=True)
class Step:
    """The next thing upkeep does: `create` generation `generation` (signing at once when
    `at_once`), or `retire` the key of `record` (out of the JWKS, then deleted)."""

    action: str
    generation: int = 0
    at_once: bool = False
    record: IssuerKey | None = None


def published(records: list[IssuerKey]) -> list[IssuerKey]:
    """The keys in the JWKS, oldest generation first."""
    return sorted((r for r in records if r.complete), key=lambda r: r.generation)


def signing_key(records: list[IssuerKey], now: datetime) -> IssuerKey | None:
    """The key that signs at `now`: of the published keys, the one with the latest `use_from`
    not after `now` (ties: the newer generation)."""
    ready = [r for r in published(records) if r.use_from is not None and r.use_from <= now]
    return max(ready, key=lambda r: (r.use_from, r.generation), default=None)


def last_signed(record: IssuerKey, records: list[IssuerKey], now: datetime) -> datetime | None:
    """When `record` signed last: when the first newer published key began to sign (None while
    no newer key signs yet: it may sign now)."""
    starts = [
        r.use_from
        for r in published(records)
        if r.generation > record.generation and r.use_from is not None and r.use_from <= now
    ]
    return min(starts, default=None)


def first_key(records: list[IssuerKey], now: datetime) -> Step | None:
    """What `ensure` does: make a key that signs at once when none is published nor being made
    (a stale claim is retired first); None when there is one, or one is being made."""
    if published(records):
        return None
    for record in records:
        if record.state == DELETING or (record.state == CLAIMED and _stale(record, now)):
            return Step("retire", record=record)
    if any(r.state == CLAIMED for r in records):
        return None  # another instance is making it
    return Step("create", generation=_next_generation(records), at_once=True)


def next_step(records: list[IssuerKey], now: datetime, rotation: timedelta) -> Step | None:
    """Upkeep's next step at `now`, or None when there is nothing to do yet. In order: finish a
    removal begun, retire a stale claim, retire a key past its retention, begin the next key
    `PUBLISH_LEAD` before the signing key has served `rotation`. Upkeep never makes the first
    key (that is `ensure`'s, when the first federated credential is made)."""
    for record in sorted(records, key=lambda r: r.generation):
        if record.state == DELETING or (record.state == CLAIMED and _stale(record, now)):
            return Step("retire", record=record)
    for record in published(records):
        last = last_signed(record, records, now)
        if last is not None and now >= last + RETAIN_AFTER:
            return Step("retire", record=record)
    current = signing_key(records, now)
    if current is None or current.use_from is None:
        return None
    if any(r.generation > current.generation for r in records):
        return None  # the next key is made or being made
    if now >= current.use_from + rotation - PUBLISH_LEAD:
        return Step("create", generation=_next_generation(records))
    return None


def use_from(published_at: datetime, at_once: bool) -> datetime:
    """When a key published at `published_at` begins to sign."""
    return published_at if at_once else published_at + PUBLISH_LEAD


def _stale(record: IssuerKey, now: datetime) -> bool:
    return now >= record.claimed_at + CLAIM_STALE


def _next_generation(records: list[IssuerKey]) -> int:
    return max((r.generation for r in records), default=0) + 1


def to_row(record: IssuerKey) -> dict[str, object]:
    """The record as a store keeps it (times in ISO 8601, exact); `version` is the store's."""
    return {
        "generation": record.generation,
        "keyId": record.key_id,
        "custody": record.custody,
        "state": record.state,
        "claimedAt": record.claimed_at.isoformat(),
        "kid": record.kid,
        "n": record.n,
        "e": record.e,
        "publishedAt": record.published_at.isoformat() if record.published_at else "",
        "useFrom": record.use_from.isoformat() if record.use_from else "",
    }


def from_row(row: dict[str, object], version: str) -> IssuerKey:
    def time(name: str) -> datetime | None:
        value = row.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None

    claimed_at = time("claimedAt")
    if claimed_at is None:
        raise ValueError("an issuer key record without claimedAt")
    return IssuerKey(
        generation=int(str(row["generation"])),
        key_id=str(row["keyId"]),
        custody=str(row["custody"]),
        state=str(row["state"]),
        claimed_at=claimed_at,
        kid=str(row.get("kid") or ""),
        n=str(row.get("n") or ""),
        e=str(row.get("e") or ""),
        published_at=time("publishedAt"),
        use_from=time("useFrom"),
        version=version,
    )
