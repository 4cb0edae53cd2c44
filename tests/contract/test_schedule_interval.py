"""Due follows the HEALTH_CHECK_INTERVAL_HOURS in force when the timer runs (API.md, Health), not
the one in force when an account was last verified: accounts verified under 6 hours, then taken
by a store of an instance whose interval is 1, 0 or 24 (an operator changed the setting), with
an injected clock. Both stores; on Table Storage the calls are counted, so the proof that only
due accounts are read stands beside it (SQLite: both reads are index ranges)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.core.model import Account
from shared.core.schedule import SchedulePolicy
from shared.core.settings import TableSettings
from shared.support.timefmt import to_rfc3339, utc_now
from tests.conftest import Azurite
from tests.contract.test_account_store import linked
from tests.contract.test_schedule import Counting

NOW = utc_now()
LEASE = timedelta(minutes=2)
SIX = SchedulePolicy(interval=timedelta(hours=6))
# When each account's last verification started, in hours before the timer's run.
AGES = {"30m": 0.5, "2h": 2, "5h": 5, "7h": 7, "20h": 20, "30h": 30}
FILLER = 120  # accounts verified after the run started: due under no interval, never read


def verified_at(store: AccountStore, account: Account, hours_ago: float) -> Account:
    started = NOW - timedelta(hours=hours_ago)
    report = {"status": "connected", "startedAt": to_rfc3339(started), "checks": []}
    return store.update_account(
        account.updated(last_verified_at=started, last_verification=report, status="connected")
    )


Reopen = Callable[[SchedulePolicy], AccountStore]


@pytest.fixture(params=["sqlite", "table"])
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Reopen, dict[str, str]]]:
    """A store written by an instance with a 6 hour interval, and a way to open it as an
    instance with another interval would."""
    if request.param == "sqlite":
        path = tmp_path / "accounts.sqlite3"

        def reopen(policy: SchedulePolicy) -> AccountStore:
            return SqliteAccountStore(path, policy)

    else:
        azurite: Azurite = request.getfixturevalue("azurite")
        table = "t" + uuid.uuid4().hex[:20]
        service = build_service(TableSettings(table, connection_string=azurite.connection_string))

        def reopen(policy: SchedulePolicy) -> AccountStore:
            return TableAccountStore(service, table, policy)

    writer = reopen(SIX)
    ids = {name: verified_at(writer, linked(writer), hours).id for name, hours in AGES.items()}
    ids["never"] = linked(writer, created=NOW - timedelta(minutes=1)).id
    for _ in range(FILLER):
        verified_at(writer, linked(writer), hours_ago=-0.1)
    yield reopen, ids


def taken_under(reopen: Reopen, hours: int) -> tuple[set[str], AccountStore]:
    store = reopen(replace(SIX, interval=timedelta(hours=hours)))
    found: list[Account] = []
    while batch := store.take_due(NOW, 4, LEASE, f"interval-{hours}"):
        found += batch
    store.release(found, f"interval-{hours}")
    ids = [a.id for a in found]
    assert len(ids) == len(set(ids))
    return set(ids), store


@pytest.mark.parametrize(
    ("hours", "due"),
    [
        (6, {"7h", "20h", "30h", "never"}),
        (1, {"2h", "5h", "7h", "20h", "30h", "never"}),  # shortened: no wait for the old 6 hours
        (0, {"30m", "2h", "5h", "7h", "20h", "30h", "never"}),  # every account verified before
        (24, {"30h", "never"}),  # lengthened: those verified within 24 hours wait
    ],
)
def test_due_is_judged_with_the_interval_in_force_when_the_timer_runs(
    fleet: tuple[Reopen, dict[str, str]], hours: int, due: set[str]
) -> None:
    reopen, ids = fleet
    store = reopen(replace(SIX, interval=timedelta(hours=hours)))
    counting = None
    if isinstance(store, TableAccountStore):
        store._client()
        counting = Counting(store._table)
        store._table = counting  # type: ignore[assignment]
    taken, _ = taken_under(lambda _policy: store, hours)
    assert taken == {ids[name] for name in due}
    from tests.contract.test_schedule import assert_due_queries_use_their_indexes, take_calls

    if counting is not None:
        # Only the due accounts were read (the fleet holds 127): lease and read each, plus the
        # two orderings' reads per batch; then each lease ended (a read and a write).
        print(f"interval {hours} h: {len(due)} due, store calls {counting.calls}")
        assert counting.calls <= take_calls(len(due), batch=4) + 2 * len(due), counting.calls
    else:
        assert isinstance(store, SqliteAccountStore)
        assert_due_queries_use_their_indexes(store)


def test_stalest_first_under_the_interval_in_force(
    fleet: tuple[Reopen, dict[str, str]],
) -> None:
    """A never-verified account is due since it was created (a minute ago): under 1 hour it
    comes after those that have waited for longer; the order merges both of the schedule's
    orderings."""
    reopen, ids = fleet
    store = reopen(replace(SIX, interval=timedelta(hours=1)))
    order = [a.id for a in store.take_due(NOW, 10, LEASE, "a")]
    names = {v: k for k, v in ids.items()}
    assert [names[i] for i in order] == ["30h", "20h", "7h", "5h", "2h", "never"]
