"""The health check's schedule in the account store, both backends: due accounts stalest first,
leases, repair of entries a crash left behind, and that finding due accounts reads only them.
(Races with writers: test_schedule_race.py; the interval in force: test_schedule_interval.py.)"""

from __future__ import annotations

import json
import sqlite3
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.accountstore.codec import account_to_row
from shared.adapters.accountstore.sqlite.schema import ROW_COLUMNS, account_row
from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.adapters.accountstore.table.schedule import set_rows
from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.core.model import Account
from shared.core.schedule import DEFAULT_POLICY, Place, due_key
from shared.core.settings import TableSettings
from shared.support.timefmt import utc_now
from tests.conftest import Azurite
from tests.contract.test_account_store import account_for, key, linked

LEASE = timedelta(minutes=2)
NOW = utc_now()


def verified(store: AccountStore, account: Account, hours_ago: float) -> Account:
    """The account as a verification `hours_ago` left it."""
    return store.update_account(
        account.updated(last_verified_at=NOW - timedelta(hours=hours_ago), status="connected")
    )


def take_all(store: AccountStore, holder: str = "a", batch: int = 10) -> list[Account]:
    found: list[Account] = []
    while batch_found := store.take_due(NOW, batch, LEASE, holder):
        found += batch_found
    return found


def test_only_due_accounts_are_taken_stalest_first(store: AccountStore) -> None:
    never = linked(store)  # never verified: due at once
    stale = verified(store, linked(store), hours_ago=30)
    older = verified(store, linked(store), hours_ago=50)
    verified(store, linked(store), hours_ago=1)  # due in 5 hours
    taken = take_all(store)
    assert [a.id for a in taken] == [never.id, older.id, stale.id]


def test_a_leased_account_is_not_taken_by_another_until_the_lease_lapses(
    store: AccountStore,
) -> None:
    account = linked(store)
    assert [a.id for a in store.take_due(NOW, 10, LEASE, "a")] == [account.id]
    assert store.take_due(NOW, 10, LEASE, "b") == []
    # An instance that died leaves a lease that lapses: another takes the account again.
    store.release([account], "b")  # not b's lease: it stays
    assert store.take_due(NOW, 10, LEASE, "b") == []
    store.release([account], "a")
    assert [a.id for a in store.take_due(NOW, 10, timedelta(0), "b")] == [account.id]
    time.sleep(1.1)  # leases are kept to the second
    assert [a.id for a in store.take_due(NOW, 10, LEASE, "c")] == [account.id]  # b's lapsed


def test_a_verification_moves_the_account_on_and_its_holder_ends_the_lease(
    store: AccountStore,
) -> None:
    account = linked(store)
    [taken] = store.take_due(NOW, 10, LEASE, "a")
    saved = verified(store, taken, hours_ago=0)
    assert store.take_due(NOW, 10, LEASE, "b") == []  # due again in 6 hours
    later = NOW + timedelta(hours=7)
    assert store.take_due(later, 10, LEASE, "b") == []  # and a's lease holds until a ends it
    store.release([saved], "a")
    assert [a.id for a in store.take_due(later, 10, LEASE, "b")] == [account.id]


def test_an_unlinked_account_leaves_the_schedule(store: AccountStore) -> None:
    account = linked(store)
    store.unlink(account.owner, account.id)
    assert store.take_due(NOW, 10, LEASE, "a") == []


def test_two_instances_taking_at_once_never_take_one_account_twice(
    store: AccountStore,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    accounts = {linked(store).id for _ in range(30)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda h: take_all(store, h, batch=4), ["a", "b", "c", "d"]))
    ids = [a.id for taken in found for a in taken]
    assert sorted(ids) == sorted(accounts)  # each once, none lost


class StopsBeforeItsSet(TableAccountStore):
    """A writer that stops between the account's write and its schedule set's (a crash)."""

    def _settle(self, account: Account, place: Place) -> None:
        return None


def schedule_rows(store: TableAccountStore) -> list[Any]:
    return store._query("PartitionKey eq @pk", pk="%schedule")


def test_table_a_set_a_crash_left_behind_is_mended_when_met(
    table_store: TableAccountStore,
) -> None:
    account = linked(table_store)  # never verified: its set says due at once
    crashing = StopsBeforeItsSet(table_store._service, table_store._table_name)
    crashing.update_account(
        account.updated(last_verified_at=NOW - timedelta(hours=1), status="connected")
    )
    assert table_store.take_due(NOW, 10, LEASE, "a") == []  # not due: mended, not taken
    [anchor] = [r for r in schedule_rows(table_store) if r["RowKey"].startswith("acc_")]
    assert anchor["last"] == due_key(NOW - timedelta(hours=1)) and anchor["leaseUntil"] == 0
    later = NOW + timedelta(hours=6)
    assert [a.id for a in table_store.take_due(later, 10, LEASE, "a")] == [account.id]


def test_table_a_set_whose_account_never_came_is_removed_once_old(
    table_store: TableAccountStore,
) -> None:
    ghost = account_for(key()).updated(created_at=NOW - timedelta(days=1))
    rows = set_rows("owner-a", "owner-a", ghost.id, DEFAULT_POLICY.place(ghost), 1)
    table_store._client()
    table_store._table.submit_transaction([("create", r) for r in rows])
    # Young: a link may be writing its account; the set is left alone (and met again only once
    # the lease taken on the way lapsed).
    assert table_store.take_due(NOW, 10, timedelta(seconds=1), "a") == []
    assert len(schedule_rows(table_store)) == len(rows) + 1  # and the sweep's row
    for row in rows:
        table_store._table.update_entity({**row, "writtenAt": 0, "leaseUntil": 0})
    assert table_store.take_due(NOW, 10, timedelta(0), "a") == []
    assert [r["RowKey"] for r in schedule_rows(table_store)] == ["sweep"]


def test_table_accounts_of_earlier_releases_get_their_sets(
    table_store: TableAccountStore, azurite: Azurite
) -> None:
    second, first = linked(table_store), linked(table_store)
    # As the second release left them: each account with its interval-bound due time and one
    # schedule entry by it (the first release: neither), in a table this release did not make.
    for row in schedule_rows(table_store):
        table_store._delete("%schedule", row["RowKey"])
    due = due_key(second.created_at)
    legacy = {"PartitionKey": "%schedule", "RowKey": f"due_{due}_owner-a_{second.id}",
              "Kind": "due", "owner": "owner-a", "accountId": second.id, "due": due,
              "leaseUntil": 0, "writtenAt": 0}  # fmt: skip
    table_store._table.upsert_entity(legacy)
    table_store._table.upsert_entity(
        {"PartitionKey": "%schedule", "RowKey": "backfill", "continuation": "", "done": True}
    )
    entity = table_store._get("owner-a", f"acct_{second.id}")
    table_store._table.upsert_entity({**entity, "dueAt": due}, mode=UpdateMode.REPLACE)
    assert table_store.take_due(NOW, 10, LEASE, "a") == []
    table_store.prepare_schedule(stop_at=float("inf"))
    assert sorted(a.id for a in table_store.take_due(NOW, 10, LEASE, "a")) == sorted(
        [first.id, second.id]
    )
    keys = [r["RowKey"] for r in schedule_rows(table_store)]
    assert not [k for k in keys if k.startswith("due_")], keys  # the old entries are gone
    assert table_store._get("%schedule", "sweep")["ready"]
    table_store.prepare_schedule(stop_at=float("inf"))  # done: nothing more to do


def test_sqlite_a_file_of_the_second_release_gets_its_schedule_columns(tmp_path: Path) -> None:
    """The second release kept one due time per account, computed with the writer's interval;
    opening its file fills the interval-free columns, so the interval in force decides."""
    path = tmp_path / "accounts.sqlite3"
    account = account_for(key()).updated(last_verified_at=NOW - timedelta(hours=2))
    with sqlite3.connect(path) as db:  # the second release's table, index and row
        db.executescript(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, owner TEXT NOT NULL, tenant_id TEXT "
            "NOT NULL, application_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT "
            "NULL, sort_key TEXT, status TEXT, due_at TEXT, lease_until INTEGER NOT NULL "
            "DEFAULT 0, lease_holder TEXT, UNIQUE (owner, tenant_id, application_id));"
            "CREATE INDEX accounts_due ON accounts (due_at, id);"
        )
        db.execute(
            "INSERT INTO accounts (id, owner, tenant_id, application_id, version, data, "
            "sort_key, status, due_at) VALUES (?, ?, ?, ?, 1, ?, '0', 'connected', ?)",
            (account.id, account.owner, account.tenant_id, account.application_id,
             json.dumps(account_to_row(account)), due_key(NOW + timedelta(hours=4))),
        )  # fmt: skip
    hourly = SqliteAccountStore(path, replace(DEFAULT_POLICY, interval=timedelta(hours=1)))
    assert [a.id for a in hourly.take_due(NOW, 10, LEASE, "a")] == [account.id]
    assert_due_queries_use_their_indexes(hourly)


def test_a_chore_runs_once_per_period_whoever_asks(store: AccountStore) -> None:
    every = timedelta(hours=6)
    assert store.claim_chore("housekeeping", NOW, every)
    assert not store.claim_chore("housekeeping", NOW + timedelta(hours=5), every)
    assert store.claim_chore("other", NOW, every)  # chores are counted apart
    assert store.claim_chore("housekeeping", NOW + timedelta(hours=6), every)
    assert store.claim_chore("housekeeping", NOW, timedelta(0))  # a period of 0: every time
    from concurrent.futures import ThreadPoolExecutor

    later = NOW + timedelta(days=1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        claims = list(pool.map(lambda _: store.claim_chore("housekeeping", later, every), range(6)))
    assert claims.count(True) == 1


# --- at fleet scale ----------------------------------------------------------------------------
def bulk_sqlite(path: Path, count: int, due: int) -> None:
    """`count` accounts of one owner written as the store writes them, `due` of them due."""
    store = SqliteAccountStore(path)  # makes the schema
    rows = []
    for n in range(count):
        account = account_for(
            key(), created=NOW - timedelta(days=1), account_id=str(uuid.UUID(int=n))
        )
        if n >= due:
            account = account.updated(last_verified_at=NOW - timedelta(minutes=n % 300))
        rows.append(account_row(account, DEFAULT_POLICY))
    with sqlite3.connect(store.path) as db:
        db.executemany(
            f"INSERT INTO accounts ({', '.join(ROW_COLUMNS)}) "  # noqa: S608 - constant text
            f"VALUES ({', '.join('?' * len(ROW_COLUMNS))})",
            rows,
        )


def peak_to_take(store: AccountStore) -> tuple[int, int]:
    tracemalloc.start()
    taken = take_all(store, batch=16)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return len(taken), peak


def test_sqlite_finding_due_accounts_uses_the_due_index_and_memory_stays_flat(
    tmp_path: Path,
) -> None:
    bulk_sqlite(tmp_path / "small.sqlite3", 10_000, due=50)
    bulk_sqlite(tmp_path / "large.sqlite3", 100_000, due=50)
    small, large = (
        SqliteAccountStore(tmp_path / "small.sqlite3"),
        SqliteAccountStore(tmp_path / "large.sqlite3"),
    )
    assert_due_queries_use_their_indexes(large)
    (n_small, peak_small), (n_large, peak_large) = peak_to_take(small), peak_to_take(large)
    assert n_small == n_large == 50
    print(
        f"peak memory taking 50 due accounts: 10,000 -> {peak_small} B, 100,000 -> {peak_large} B"
    )
    assert peak_large < peak_small * 1.5 + 64 * 1024


def assert_due_queries_use_their_indexes(store: SqliteAccountStore) -> None:
    """Both of `take_due`'s reads are ranges of an index, whatever the number of accounts."""
    with sqlite3.connect(store.path) as db:
        for column, index in (("last_started", "accounts_last"), ("renew_at", "accounts_renew")):
            plan = " ".join(
                str(r[-1])
                for r in db.execute(
                    "EXPLAIN QUERY PLAN SELECT id, data, last_started, renew_at FROM accounts "  # noqa: S608
                    f"WHERE {column} <= ? AND lease_until < ? ORDER BY {column}, id LIMIT ?",
                    ("x", 0, 1),
                )
            )
            assert f"USING INDEX {index}" in plan and "SCAN accounts" not in plan, plan


@pytest.fixture
def table_store(azurite: Azurite) -> Iterator[TableAccountStore]:
    table = "t" + uuid.uuid4().hex[:20]
    settings = TableSettings(table, connection_string=azurite.connection_string)
    yield TableAccountStore(build_service(settings), table)


class Counting:
    """The store's TableClient, counting the calls that reach the service."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.calls = inner, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if callable(attribute) and not name.startswith("_"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute


def test_table_finding_due_accounts_among_10000_reads_only_the_due_ones(
    table_store: TableAccountStore,
) -> None:
    due, count = 40, 10_000
    entities: list[dict[str, Any]] = []
    schedule: list[dict[str, Any]] = []
    for n in range(count):
        account = account_for(
            key(), created=NOW - timedelta(days=1), account_id=str(uuid.UUID(int=n))
        )
        if n >= due:
            account = account.updated(last_verified_at=NOW - timedelta(minutes=n % 300))
        entities.append({"PartitionKey": "owner-a", "RowKey": f"acct_{account.id}",
                         "Kind": "account", **account_to_row(account)})  # fmt: skip
        place = DEFAULT_POLICY.place(account)
        schedule += set_rows("owner-a", "owner-a", account.id, place, account.version)
    table_store._client()
    for rows in (entities, schedule):
        for i in range(0, len(rows), 99):
            table_store._table.submit_transaction([("upsert", r) for r in rows[i : i + 99]])
    counting = Counting(table_store._table)
    table_store._table = counting  # type: ignore[assignment]
    taken = take_all(table_store, batch=20)
    assert len(taken) == due
    print(f"store calls to take {due} due accounts among {count}: {counting.calls}")
    assert counting.calls <= take_calls(due, batch=20), counting.calls


def take_calls(due: int, batch: int) -> int:
    """The most calls `take_all` may make: per batch (and the last, which finds none) one query
    of each of the schedule's two orderings, then per due account its lease and its read."""
    return 2 * (-(-due // batch) + 1) + 2 * due
