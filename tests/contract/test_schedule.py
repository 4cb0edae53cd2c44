"""The health check's schedule in the account store, both backends: due accounts stalest first,
leases, repair of entries a crash left behind, and that finding due accounts reads only them."""

from __future__ import annotations

import json
import sqlite3
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from shared.accountstore.base import AccountStore
from shared.accountstore.codec import account_to_row
from shared.accountstore.sqlite import SqliteAccountStore
from shared.accountstore.table import TableAccountStore, build_service
from shared.records import Account
from shared.schedule import DEFAULT_POLICY, due_key
from shared.settings import TableSettings
from shared.timefmt import utc_now
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


def test_a_verification_moves_the_account_on_and_ends_its_lease(store: AccountStore) -> None:
    account = linked(store)
    [taken] = store.take_due(NOW, 10, LEASE, "a")
    verified(store, taken, hours_ago=0)
    assert store.take_due(NOW, 10, LEASE, "b") == []  # due again in 6 hours
    assert [a.id for a in store.take_due(NOW + timedelta(hours=7), 10, LEASE, "b")] == [account.id]


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


def test_table_an_entry_a_crash_left_behind_is_repaired_when_met(
    table_store: TableAccountStore,
) -> None:
    account = verified(table_store, linked(table_store), hours_ago=1)
    # A write that crashed after the account moved on but before its old entry went: an entry
    # that says the account is due now.
    table_store._schedule(account, due_key(NOW - timedelta(hours=3)))
    assert table_store.take_due(NOW, 10, LEASE, "a") == []  # not due: repaired, not verified
    assert table_store.take_due(NOW, 10, LEASE, "a") == []  # and gone
    # An entry whose account never came (a link that failed after its entry) is removed once old.
    ghost = account_for(key()).updated(created_at=NOW - timedelta(days=1))
    table_store._schedule(ghost, due_key(ghost.created_at))
    entity = table_store._get("%schedule", f"due_{due_key(ghost.created_at)}_owner-a_{ghost.id}")
    assert entity is not None
    table_store._table.update_entity({**entity, "writtenAt": 0})
    assert table_store.take_due(NOW, 10, timedelta(0), "a") == []
    assert table_store._get("%schedule", entity["RowKey"]) is None
    # The real account is still scheduled, at its own due time.
    later = NOW + timedelta(hours=6)
    assert [a.id for a in table_store.take_due(later, 10, LEASE, "a")] == [account.id]


def test_table_accounts_of_the_last_release_get_their_entries(
    table_store: TableAccountStore, azurite: Azurite
) -> None:
    account = linked(table_store)
    # As the last release wrote it: the account without a due time, no schedule entry, and a
    # table this release did not make (so no note that every account has its entry).
    table_store._delete("%schedule", f"due_{due_key(account.created_at)}_owner-a_{account.id}")
    table_store._delete("%schedule", "backfill")
    entity = table_store._get("owner-a", f"acct_{account.id}")
    table_store._table.upsert_entity(
        {k: v for k, v in entity.items() if k != "dueAt"}, mode=UpdateMode.REPLACE
    )
    assert table_store.take_due(NOW, 10, LEASE, "a") == []
    table_store.prepare_schedule(stop_at=float("inf"))
    assert [a.id for a in table_store.take_due(NOW, 10, LEASE, "a")] == [account.id]


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
        rows.append((account.id, account.owner, account.tenant_id, account.application_id, 1,
                     json.dumps(account_to_row(account)), "0", account.status,
                     due_key(DEFAULT_POLICY.due_at(account))))  # fmt: skip
    with sqlite3.connect(store.path) as db:
        db.executemany(
            "INSERT INTO accounts (id, owner, tenant_id, application_id, version, data, sort_key, "
            "status, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    with sqlite3.connect(large.path) as db:
        plan = " ".join(
            str(r[-1])
            for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT id, data FROM accounts WHERE due_at <= ? AND "
                "lease_until < ? ORDER BY due_at, id LIMIT ?",
                ("x", 0, 1),
            )
        )
    assert "USING INDEX accounts_due" in plan and "SCAN accounts" not in plan, plan
    (n_small, peak_small), (n_large, peak_large) = peak_to_take(small), peak_to_take(large)
    assert n_small == n_large == 50
    print(
        f"peak memory taking 50 due accounts: 10,000 -> {peak_small} B, 100,000 -> {peak_large} B"
    )
    assert peak_large < peak_small * 1.5 + 64 * 1024


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
        when = due_key(DEFAULT_POLICY.due_at(account))
        entities.append({"PartitionKey": "owner-a", "RowKey": f"acct_{account.id}",
                         "Kind": "account", "dueAt": when, **account_to_row(account)})  # fmt: skip
        schedule.append({"PartitionKey": "%schedule", "RowKey": f"due_{when}_owner-a_{account.id}",
                         "Kind": "due", "owner": "owner-a", "accountId": account.id,
                         "due": when, "leaseUntil": 0, "writtenAt": 0})  # fmt: skip
    table_store._client()
    for rows in (entities, schedule):
        for i in range(0, len(rows), 100):
            table_store._table.submit_transaction([("upsert", r) for r in rows[i : i + 100]])
    counting = Counting(table_store._table)
    table_store._table = counting  # type: ignore[assignment]
    taken = take_all(table_store, batch=20)
    assert len(taken) == due
    print(f"store calls to take {due} due accounts among {count}: {counting.calls}")
    # One query per batch (and one that finds none), then per due account its lease and its read.
    assert counting.calls <= (due // 20 + 1) + 2 * due, counting.calls
