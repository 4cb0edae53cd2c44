"""Paged account lists and the event log, run against SQLite and Table Storage on Azurite."""

from __future__ import annotations

import json
import multiprocessing
import random
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.accountstore import AccountStore
from shared.adapters.accountstore.base import BadPosition
from shared.adapters.accountstore.codec import account_to_row
from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.core.model import TIMER, Account, Actor, Event
from shared.core.settings import TableSettings
from tests.contract.test_account_store import T0, account_for, key

USER = Actor("user", "oid-1")


def event(account: Account, type_: str, at: Any = T0, **kw: Any) -> Event:
    return Event(str(uuid.uuid4()), account.owner, account.id, type_, at, USER, **kw)


def new_account(store: AccountStore, owner: str = "owner-a", **kw: Any) -> Account:
    k = key(owner)
    store.add_key(k)
    account = account_for(k, **kw)
    store.link(account, [event(account, "linked", status="pending")])
    return account


def api_order(accounts: list[Account]) -> list[str]:
    return [a.id for a in sorted(accounts, key=lambda a: (-a.created_at.timestamp(), a.id))]


def walk(store: AccountStore, owner: str, top: int, status: str | None = None) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = store.page_accounts(owner, top, after, status)
        assert len(page.items) <= top
        seen += [a.id for a in page.items]
        if page.next is None:
            return seen
        after = page.next


def test_pages_hold_every_account_once_in_api_order_while_accounts_come_and_go(
    store: AccountStore,
) -> None:
    rng = random.Random(14)
    # Many accounts share a creation second, so ties by id are exercised too.
    created = [T0 - timedelta(seconds=rng.randrange(600)) for _ in range(2500)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        accounts = list(pool.map(lambda c: new_account(store, created=c), created))
    new_account(store, owner="owner-b")  # never in owner-a's pages
    removed: set[str] = set()
    pages: list[list[str]] = []
    after = None
    while True:
        page = store.page_accounts("owner-a", 100, after)
        pages.append([a.id for a in page.items])
        # Between pages: accounts newer and older than the cursor appear, others go.
        for _ in range(3):
            new_account(store, created=T0 - timedelta(seconds=rng.randrange(-60, 660)))
        for victim in rng.sample([a for a in accounts if a.id not in removed], 2):
            store.unlink("owner-a", victim.id)
            removed.add(victim.id)
        if page.next is None:
            break
        after = page.next
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)), "an account was shown twice"
    throughout = [i for i in api_order(accounts) if i not in removed]
    assert [i for i in seen if i in set(throughout)] == throughout
    assert all(len(p) <= 100 for p in pages) and len(pages) >= 25


def test_status_filter_pages_and_counts(store: AccountStore) -> None:
    accounts = [new_account(store, created=T0 - timedelta(seconds=i)) for i in range(7)]
    for account in accounts[::2]:  # 4 connected
        store.update_account(account.updated(status="connected"))
    assert store.count_accounts("owner-a") == (7, 4)
    assert store.count_accounts("owner-z") == (0, 0)
    assert walk(store, "owner-a", 3, "connected") == [a.id for a in accounts[::2]]
    assert walk(store, "owner-a", 1, "pending") == [a.id for a in accounts[1::2]]
    assert walk(store, "owner-a", 1000, "action_required") == []
    store.unlink("owner-a", accounts[0].id)
    assert store.count_accounts("owner-a") == (6, 3)
    # The last page carries no continuation; an exact multiple of `top` ends with it too.
    assert store.page_accounts("owner-a", 6).next is None
    assert store.page_accounts("owner-a", 5).next is not None


def test_a_page_shows_the_account_as_it_is_now(store: AccountStore) -> None:
    account = new_account(store)
    report = {"status": "connected", "checks": [{"id": "x", "detail": "y" * 70_000}]}
    store.update_account(account.updated(status="connected", last_verification=report))
    (shown,) = store.page_accounts("owner-a", 10).items
    assert shown.status == "connected" and shown.last_verification == report
    assert shown.version == 2


@pytest.mark.parametrize(
    "forged", ["", "x", "999999999999_", "1_" + str(uuid.uuid4()), "../../etc", "' or 1 eq 1"]
)
def test_a_position_the_store_never_gave_is_refused(store: AccountStore, forged: str) -> None:
    with pytest.raises(BadPosition):
        store.page_accounts("owner-a", 10, forged)


def test_history_is_newest_first_paged_and_outlives_the_account(store: AccountStore) -> None:
    account = new_account(store)
    other = new_account(store)
    current = account
    for n in range(4):
        status = "connected" if n % 2 else "action_required"
        current = store.update_account(
            current.updated(status=status),
            [event(current, "verified", status=status, previous_status=current.status)],
        )
    store.unlink("owner-a", account.id, [event(account, "unlinked")])
    types: list[str] = []
    after = None
    while True:
        page = store.account_history("owner-a", account.id, 2, after)
        types += [e.type for e in page.items]
        if page.next is None:
            break
        after = page.next
    assert types == ["unlinked", "verified", "verified", "verified", "verified", "linked"]
    assert store.account_history("owner-a", account.id, 1).items[0].previous_status == "connected"
    assert [e.type for e in store.account_history("owner-a", other.id, 10).items] == ["linked"]
    assert store.account_history("owner-b", account.id, 10).items == []


def test_the_feed_is_oldest_first_with_a_cursor_and_refuses_a_future_one(
    store: AccountStore,
) -> None:
    a = new_account(store)
    b = new_account(store)
    new_account(store, owner="owner-b")
    store.unlink("owner-a", a.id, [event(a, "unlinked")])
    events, cursor = store.events_after("owner-a", 0, 2)
    assert [(e.account_id, e.type) for e in events] == [(a.id, "linked"), (b.id, "linked")]
    more, cursor = store.events_after("owner-a", cursor, 100)
    assert [(e.account_id, e.type, e.previous_status) for e in more] == [
        (a.id, "unlinked", "pending")
    ]
    assert store.events_after("owner-a", cursor, 100) == ([], cursor)
    with pytest.raises(BadPosition):
        store.events_after("owner-a", cursor + 1, 100)
    assert store.events_after("owner-c", 0, 100) == ([], 0)


def test_retention_removes_old_events_only(store: AccountStore) -> None:
    account = new_account(store)  # linked at T0
    store.update_account(
        account.updated(status="connected"),
        [event(account, "verified", at=T0 + timedelta(days=100), status="connected")],
    )
    assert store.expire_events(T0 + timedelta(days=1), 500) == 1
    assert store.expire_events(T0 + timedelta(days=1), 500) == 0
    events, _ = store.events_after("owner-a", None, 100)
    assert [e.type for e in events] == ["verified"]
    assert [e.type for e in store.account_history("owner-a", account.id, 10).items] == ["verified"]


# --- concurrent writers --------------------------------------------------------------------
WRITERS = 8
CHANGES = 12  # per writer: link, verifications, unlink


def write_changes(store: AccountStore, owner: str, writer: int) -> None:
    """One writer: accounts linked, re-verified with a status change each time, unlinked."""
    for n in range(CHANGES // 4):
        account = new_account(store, owner, created=T0 + timedelta(seconds=writer))
        current = account
        for status in ("connected", "action_required"):
            current = store.update_account(
                current.updated(status=status),
                [event(current, "verified", status=status, previous_status=current.status)],
            )
        store.unlink(owner, account.id, [Event(str(uuid.uuid4()), owner, account.id, "unlinked",
                                               T0, TIMER, detail=f"{writer}-{n}")])  # fmt: skip


def follow_feed(store: AccountStore, owner: str, expected: int, stop: threading.Event) -> list[Any]:
    seen: list[Any] = []
    cursor = 0
    while len(seen) < expected:
        events, cursor = store.events_after(owner, cursor, 7)
        seen += [(e.seq, e.id) for e in events]
        if stop.is_set() and not events:
            break
    return seen


def assert_exactly_once_in_order(seen: list[Any], expected: int) -> None:
    assert [s for s, _ in seen] == list(range(1, expected + 1))
    assert len({i for _, i in seen}) == expected


def test_the_feed_misses_nothing_under_eight_concurrent_writers(store: AccountStore) -> None:
    expected = WRITERS * CHANGES
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        reader = pool.submit(follow_feed, store, "owner-a", expected, stop)
        writers = [pool.submit(write_changes, store, "owner-a", w) for w in range(WRITERS)]
        for w in writers:
            w.result()
        stop.set()
        seen = reader.result(timeout=120)
    assert_exactly_once_in_order(seen, expected)
    assert store.count_accounts("owner-a") == (0, 0)


def _writer_process(spec: dict[str, str], writer: int) -> None:
    write_changes(open_store(spec), "owner-a", writer)


def open_store(spec: dict[str, str]) -> AccountStore:
    if spec["backend"] == "sqlite":
        return SqliteAccountStore(Path(spec["path"]))
    settings = TableSettings(spec["table"], connection_string=spec["connection_string"])
    return TableAccountStore(build_service(settings), spec["table"])


def test_the_feed_misses_nothing_with_writers_in_two_processes(
    store: AccountStore, request: pytest.FixtureRequest
) -> None:
    if isinstance(store, SqliteAccountStore):
        spec = {"backend": "sqlite", "path": str(store.path)}
    else:
        assert isinstance(store, TableAccountStore)
        azurite = request.getfixturevalue("azurite")
        spec = {
            "backend": "table",
            "table": store._table_name,
            "connection_string": azurite.connection_string,
        }
    context = multiprocessing.get_context("spawn")
    # Each process runs 4 writer threads through its own store: the ETag (Table) or the write
    # lock (SQLite) orders the two processes' events, not a lock they share.
    processes = [context.Process(target=_process_main, args=(spec, p)) for p in range(2)]
    for process in processes:
        process.start()
    stop = threading.Event()
    expected = WRITERS * CHANGES
    with ThreadPoolExecutor(max_workers=1) as pool:
        reader = pool.submit(follow_feed, store, "owner-a", expected, stop)
        for process in processes:
            process.join(timeout=300)
            assert process.exitcode == 0
        stop.set()
        seen = reader.result(timeout=120)
    assert_exactly_once_in_order(seen, expected)


def _process_main(spec: dict[str, str], process: int) -> None:
    store = open_store(spec)
    with ThreadPoolExecutor(max_workers=WRITERS // 2) as pool:
        futures = [
            pool.submit(write_changes, store, "owner-a", process * (WRITERS // 2) + w)
            for w in range(WRITERS // 2)
        ]
        for future in futures:
            future.result()


# --- a store the first release wrote -------------------------------------------------------
def test_a_first_release_sqlite_file_is_paged_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "accounts.sqlite3"
    with sqlite3.connect(path) as db:  # the first release's schema and rows
        db.executescript(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, owner TEXT NOT NULL, tenant_id TEXT "
            "NOT NULL, application_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT "
            "NULL, UNIQUE (owner, tenant_id, application_id));"
        )
        old = [account_for(key(), created=T0 - timedelta(seconds=i)) for i in range(5)]
        old[1] = old[1].updated(status="connected")
        for a in old:
            db.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                (a.id, a.owner, a.tenant_id, a.application_id, 1, json.dumps(account_to_row(a))),
            )
    store = SqliteAccountStore(path)
    assert walk(store, "owner-a", 2) == [a.id for a in old]
    assert walk(store, "owner-a", 2, "connected") == [old[1].id]
    assert store.count_accounts("owner-a") == (5, 1)


def test_a_first_release_table_partition_is_paged_and_counted(azurite: Any) -> None:
    table = "t" + uuid.uuid4().hex[:20]
    settings = TableSettings(table, connection_string=azurite.connection_string)
    store = TableAccountStore(build_service(settings), table)
    old = [account_for(key(), created=T0 - timedelta(seconds=i)) for i in range(5)]
    old[1] = old[1].updated(status="connected")
    client = store._client()
    for a in old:  # the rows the first release wrote: account and pair, no index, no meta
        client.create_entity({"PartitionKey": "owner-a", "RowKey": "acct_" + a.id,
                              "Kind": "account", **account_to_row(a)})  # fmt: skip
        client.create_entity({"PartitionKey": "owner-a",
                              "RowKey": f"pair_{a.tenant_id}_{a.application_id}",
                              "Kind": "pair", "accountId": a.id})  # fmt: skip
    assert store.count_accounts("owner-a") == (5, 1)
    # An old account unlinked before the first list: no index row to remove, counts follow.
    store.unlink("owner-a", old[4].id)
    assert store.count_accounts("owner-a") == (4, 1)
    assert walk(store, "owner-a", 2) == [a.id for a in old[:4]]
    fresh = TableAccountStore(build_service(settings), table)  # another instance
    assert walk(fresh, "owner-a", 3, "connected") == [old[1].id]
    fresh.update_account(fresh.get_account("owner-a", old[0].id).updated(status="connected"))  # type: ignore[union-attr]
    assert walk(store, "owner-a", 10, "connected") == [old[0].id, old[1].id]


def test_retention_goes_on_where_it_stopped_in_bounded_steps(store: AccountStore) -> None:
    for owner in ("owner-a", "owner-b", "owner-c"):
        new_account(store, owner)  # linked at T0
    kept = new_account(store, "owner-d")
    store.update_account(
        kept.updated(status="connected"),
        [event(kept, "verified", at=T0 + timedelta(days=100), status="connected")],
    )
    cutoff = T0 + timedelta(days=1)
    assert [store.expire_events(cutoff, 1) for _ in range(4)] == [1, 1, 1, 1]
    assert store.expire_events(cutoff, 1) == 0
    assert [e.type for e in store.events_after("owner-d", None, 10)[0]] == ["verified"]
    for owner in ("owner-a", "owner-b", "owner-c"):
        assert store.events_after(owner, None, 10)[0] == []


def test_reading_an_owner_without_accounts_writes_nothing(store: AccountStore) -> None:
    assert store.page_accounts("nobody", 10).items == []
    assert store.count_accounts("nobody") == (0, 0)
    assert store.events_after("nobody", 0, 10) == ([], 0)
    if isinstance(store, TableAccountStore):
        assert list(store._client().query_entities("PartitionKey eq 'nobody'")) == []
