"""The issuer key's whole lifecycle, with an injected clock, on both account stores and under
`local` and `vault-key` custody, with two instances running upkeep at once: at every moment every
assertion signed in the last 10 minutes verifies against the JWKS then published; a new key is in
the JWKS a day before it signs; a replaced one stays 24 h 10 min after it signed last, then leaves
the JWKS and the key store; a crash between any two steps loses no key that signed a live
assertion, and the next upkeep finishes the job."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from localdev.azurite import Azurite
from shared.adapters.accountstore.base import AccountStore
from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.adapters.issuer import IssuerKeyring, IssuerKeyUnavailable, IssuerUpkeep
from shared.adapters.keystore.base import KeyStore
from shared.core.settings import TableSettings
from tests.contract.test_key_store import make_store

ROTATION = timedelta(days=30)
DAY = timedelta(hours=24)
LIFETIME = timedelta(minutes=10)  # a federated assertion's
ISSUER, AUDIENCE = "https://issuer.example/api/oidc", "api://AzureADTokenExchange"
PUBLIC_MEMBERS = {"kty", "use", "alg", "kid", "n", "e"}


class Crash(Exception):
    """The process dying between two steps."""


class Clock:
    """The instances' shared clock, moved by the test (it starts at the real time)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.at

    def advance(self, by: timedelta) -> None:
        with self._lock:
            self.at += by


@dataclass(frozen=True)
class Assertion:
    token: str
    kid: str
    signed_at: datetime


@dataclass
class World:
    accounts: AccountStore
    keys: KeyStore
    clock: Clock = field(default_factory=Clock)

    def ring(self, hook: Callable[[str], None] | None = None) -> IssuerKeyring:
        """One instance of the app's issuer key ring over the shared stores."""
        return IssuerKeyring(
            self.accounts,
            lambda custody: self.keys,
            self.keys.custody,
            rotation=ROTATION,
            store_identity=self.accounts.identity,
            now=self.clock,
            hook=hook,
        )

    def published_now(self) -> dict[str, Any]:
        """The JWKS as a fresh instance serves it (nothing cached)."""
        return self.ring().public_jwks()

    def held(self) -> set[str]:
        return {k.key_id for k in self.keys.list() if k.store == self.accounts.identity}

    def recorded(self) -> set[str]:
        return {r.key_id for r in self.accounts.issuer_keys()}

    def sign(self, ring: IssuerKeyring) -> Assertion:
        kid, key = ring.signer()
        now = self.clock()
        claims = {
            "iss": ISSUER,
            "sub": "link-1",
            "aud": AUDIENCE,
            "jti": str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "exp": int((now + LIFETIME).timestamp()),
        }
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
        return Assertion(token, kid, now)


def verifies(assertion: Assertion, jwks: dict[str, Any]) -> bool:
    """What Entra does with the JWKS it holds: find the `kid`, check the RS256 signature."""
    kid = jwt.get_unverified_header(assertion.token)["kid"]
    matching = [k for k in jwks["keys"] if k["kid"] == kid]
    if not matching:
        return False
    key = jwt.PyJWK.from_dict(matching[0]).key
    # exp and iat are the test clock's, not the real one's: `live` below keeps the lifetime.
    jwt.decode(assertion.token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
               options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    return True


def check_jwks(jwks: dict[str, Any]) -> set[str]:
    assert 1 <= len(jwks["keys"]) <= 3
    for key in jwks["keys"]:
        assert set(key) == PUBLIC_MEMBERS and key["alg"] == "RS256" and key["use"] == "sig"
    return {k["kid"] for k in jwks["keys"]}


def live(assertions: list[Assertion], now: datetime) -> list[Assertion]:
    return [a for a in assertions if now < a.signed_at + LIFETIME]


def crash_at(point: str) -> Callable[[str], None]:
    def hook(name: str) -> None:
        if name == point:
            raise Crash(point)

    return hook


def both(*calls: Callable[[], IssuerUpkeep]) -> list[IssuerUpkeep]:
    """The instances' timer runs at the same moment, each in its own thread."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


@pytest.fixture(params=["sqlite", "table"])
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountStore]:
    if request.param == "sqlite":
        yield SqliteAccountStore(tmp_path / "accounts.sqlite3")
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    table = "t" + uuid.uuid4().hex[:20]
    settings = TableSettings(table, connection_string=azurite.connection_string)
    yield TableAccountStore(build_service(settings), table)


@pytest.fixture
def world(accounts: AccountStore, tmp_path: Path) -> World:
    return World(accounts, make_store("local", tmp_path / "keys"))


@pytest.fixture
def vault_world(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    keys = make_store("vault-key", tmp_path / "keys", sandbox.keyvault_url)
    return World(SqliteAccountStore(tmp_path / "accounts.sqlite3"), keys)


@dataclass
class Watch:
    """What the walk saw of each `kid`: when it entered and left the JWKS, when it signed."""

    first_seen: dict[str, datetime] = field(default_factory=dict)
    gone_at: dict[str, datetime] = field(default_factory=dict)
    first_signed: dict[str, datetime] = field(default_factory=dict)
    last_signed: dict[str, datetime] = field(default_factory=dict)
    signed: list[str] = field(default_factory=list)  # kids in the order they began to sign
    key_ids: dict[str, str] = field(default_factory=dict)
    published_at: datetime | None = None


def step(world: World, rings: list[IssuerKeyring], assertions: list[Assertion], w: Watch) -> None:
    """One moment: both instances' upkeep at once, an assertion signed, everything checked."""
    now = world.clock()
    done = both(*(ring.upkeep for ring in rings))
    assert all(d.stopped is None for d in done)
    assert sum(d.published for d in done) <= 1  # two instances never make two next keys
    if any(d.published for d in done):
        w.published_at = now
    truth = check_jwks(world.published_now())
    for record in world.accounts.issuer_keys():
        w.key_ids.setdefault(record.kid, record.key_id)
    for kid in truth - w.first_seen.keys():
        w.first_seen[kid] = now
    for kid in set(w.first_seen) - truth - set(w.gone_at):
        w.gone_at[kid] = now
        # It stayed 24 h + the assertion lifetime after its successor took over (its last
        # possible signature), and it left the key store with the JWKS.
        assert now - w.last_signed[kid] >= DAY + LIFETIME
        successor = w.signed[w.signed.index(kid) + 1]
        assert now - w.first_signed[successor] >= DAY + LIFETIME
        assert w.key_ids[kid] not in world.held()
    signed = world.sign(rings[len(assertions) % len(rings)])
    assertions.append(signed)
    if signed.kid not in w.first_signed:
        w.first_signed[signed.kid] = now
        w.signed.append(signed.kid)
        if len(w.signed) > 1:  # every key but the first is published a day before it signs
            assert now - w.first_seen[signed.kid] >= DAY
    w.last_signed[signed.kid] = now
    for jwks in [world.published_now(), *(ring.public_jwks() for ring in rings)]:
        check_jwks(jwks)
        assert all(verifies(a, jwks) for a in live(assertions, now))
    assert world.held() == world.recorded()


def walk(world: World, days: int) -> Watch:
    """Two instances from the first key through `days`: 6-hour steps, and 5-minute steps for the
    two days after a key is published (its switch and its predecessor's retirement)."""
    rings = [world.ring(), world.ring()]
    rings[0].ensure()
    assertions: list[Assertion] = []
    w, end = Watch(), world.clock() + timedelta(days=days)
    while world.clock() < end:
        step(world, rings, assertions, w)
        assertions = live(assertions, world.clock())
        fine = w.published_at is not None and world.clock() < w.published_at + 2 * DAY + DAY / 12
        world.clock.advance(timedelta(minutes=5) if fine else timedelta(hours=6))
    return w


def check_cycle(world: World, w: Watch) -> None:
    assert len(w.signed) == 3 and len(w.first_seen) == 3  # two rotations, one key each
    assert set(w.gone_at) == set(w.signed[:2])
    for before, after in zip(w.signed, w.signed[1:], strict=False):
        # switched promptly: the day (and the caches' hour) of publication, then at once
        assert w.first_signed[after] - w.first_seen[after] <= DAY + timedelta(hours=1, minutes=5)
        assert w.first_signed[after] - w.first_signed[before] <= ROTATION + timedelta(
            hours=6, minutes=15
        )
    assert check_jwks(world.published_now()) == {w.signed[-1]}
    assert world.held() == world.recorded() == {w.key_ids[w.signed[-1]]}


def test_the_whole_cycle_with_two_instances(world: World) -> None:
    check_cycle(world, walk(world, 65))


def test_the_whole_cycle_under_vault_key(vault_world: World, sandbox: Any) -> None:
    check_cycle(vault_world, walk(vault_world, 65))
    held = sandbox.admin.keyvault_keys()["keys"]
    assert len(held) == 1 and held[0]["tags"]["owner"] == "%issuer"


def test_nothing_signs_before_the_first_key_and_the_first_signs_at_once(world: World) -> None:
    ring = world.ring()
    with pytest.raises(IssuerKeyUnavailable):
        ring.signer()
    assert ring.public_jwks() == {"keys": []} and ring.health() is None
    assert ring.upkeep().actions == []  # the timer never makes the first key
    ring.ensure()
    ring.ensure()  # idempotent
    assert ring.health() == {"status": "ok", "keys": 1}
    assert verifies(world.sign(ring), ring.public_jwks())
    assert len(world.held()) == 1


def test_many_callers_ensuring_at_once_make_one_first_key(world: World) -> None:
    callers = 4
    start, held = threading.Barrier(callers), threading.local()

    def hold(name: str) -> None:
        if name == "decided" and not getattr(held, "once", False):
            held.once = True
            start.wait(timeout=20)

    rings = [world.ring(hook=hold) for _ in range(callers)]
    with ThreadPoolExecutor(callers) as pool:
        for future in [pool.submit(ring.ensure) for ring in rings]:
            future.result()
    assert [r.generation for r in world.accounts.issuer_keys()] == [1]
    assert len({ring.signer()[0] for ring in rings}) == 1
    assert world.held() == world.recorded()


def test_two_instances_deciding_at_once_make_one_next_key(world: World) -> None:
    world.ring().ensure()
    world.clock.advance(ROTATION - DAY)  # within the lead: the next key is due
    start, held = threading.Barrier(2), threading.local()

    def hold(name: str) -> None:  # both read the records and decide before either writes
        if name == "decided" and not getattr(held, "once", False):
            held.once = True
            start.wait(timeout=20)

    done = both(world.ring(hook=hold).upkeep, world.ring(hook=hold).upkeep)
    assert sorted(d.published for d in done) == [0, 1]
    assert sorted(d.lost_races for d in done) == [0, 1]
    assert [r.generation for r in world.accounts.issuer_keys()] == [1, 2]
    assert len(world.held()) == 2 and world.held() == world.recorded()
    # both retire the old key at once later: it goes once, and neither fails
    world.clock.advance(2 * DAY + timedelta(hours=2))
    done = both(world.ring(hook=hold).upkeep, world.ring(hook=hold).upkeep)
    assert all(d.stopped is None for d in done)
    assert [r.generation for r in world.accounts.issuer_keys()] == [2]
    assert len(world.held()) == 1 and world.held() == world.recorded()


@pytest.mark.parametrize("point", ["decided", "claimed", "created", "published"])
def test_a_crash_while_making_the_next_key(world: World, point: str) -> None:
    first = world.ring()
    first.ensure()
    assertions = [world.sign(first)]
    world.clock.advance(ROTATION - DAY)
    with pytest.raises(Crash):
        world.ring(hook=crash_at(point)).upkeep()
    survivor = world.ring()
    for _ in range(4):  # the other instance's timer runs, ten minutes apart
        assertions = live([*assertions, world.sign(survivor)], world.clock())
        for jwks in (world.published_now(), first.public_jwks(), survivor.public_jwks()):
            assert all(verifies(a, jwks) for a in assertions)
        world.clock.advance(timedelta(minutes=10))
        assert survivor.upkeep().stopped is None
    records = world.accounts.issuer_keys()
    assert [(r.generation, r.state) for r in records] == [(1, "published"), (2, "published")]
    assert world.held() == world.recorded()  # a claim left by the crash went with its key
    world.clock.advance(DAY + timedelta(hours=1))
    kid, _ = survivor.signer()
    assert kid == records[1].kid  # the new key signs once its day of publication is over
    assert verifies(world.sign(survivor), first.public_jwks())


@pytest.mark.parametrize("point", ["decided", "marked", "unkeyed"])
def test_a_crash_while_retiring_a_key(world: World, point: str) -> None:
    ring = world.ring()
    ring.ensure()
    world.clock.advance(ROTATION - DAY)
    assert ring.upkeep().published == 1
    world.clock.advance(DAY + timedelta(hours=1))
    old, new = world.accounts.issuer_keys()
    assertions = [world.sign(ring)]
    assert assertions[0].kid == new.kid
    world.clock.advance(DAY + timedelta(minutes=15))  # the old key's retention is over
    with pytest.raises(Crash):
        world.ring(hook=crash_at(point)).upkeep()
    assertions = live([*assertions, world.sign(ring)], world.clock())
    for jwks in (world.published_now(), ring.public_jwks()):
        assert new.kid in check_jwks(jwks)
        assert all(verifies(a, jwks) for a in assertions)
    assert world.ring().upkeep().retired == 1
    assert world.accounts.issuer_keys() == [new]
    assert world.held() == world.recorded() == {new.key_id}
    assert check_jwks(world.published_now()) == {new.kid} != {old.kid}
