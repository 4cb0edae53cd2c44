"""The schedule under writers that race the timer (issue 18, items 2 and 5).

- Table Storage keeps an account's schedule rows apart from the account, so a write changes
  them in a step of its own. A timer instance that meets the account between the writer's
  steps must never leave it without an entry (it used to "repair" the writer's new entry away:
  the account was never verified again). The interleavings are forced by a hook around the
  writer's account transaction.
- Whatever an account's schedule rows went through, the sweep puts back an account missing
  from the schedule, a page at a time, continuing where the last call stopped.
- A write (a customer's, another instance's upkeep) never ends a lease another instance holds:
  only the holder does, so no second instance verifies the account meanwhile. Both stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.accountstore.codec import account_to_row
from shared.adapters.accountstore.table.store import TableAccountStore
from shared.core.model import Account, Rotation
from shared.core.schedule import DEFAULT_POLICY
from shared.support.timefmt import to_rfc3339
from tests.contract.test_account_store import account_for, key, linked
from tests.contract.test_schedule import LEASE, NOW, table_store, verified

__all__ = ["table_store"]  # the fixture
LATER = NOW + timedelta(hours=7)  # the verification written below is due again by then


class Hooked:
    """The store's TableClient, running `hook` once just before (or after) the transaction
    that writes an account, as another instance could run between a writer's steps."""

    def __init__(self, inner: Any, hook: Callable[[], None], *, after: bool) -> None:
        self._inner, self._hook, self._after, self.fired = inner, hook, after, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def submit_transaction(self, operations: Any, **kwargs: Any) -> Any:
        writes_account = any(op[1]["RowKey"].startswith("acct_") for op in operations)
        fire = writes_account and not self.fired
        if fire and not self._after:
            self.fired = True
            self._hook()
        result = self._inner.submit_transaction(operations, **kwargs)
        if fire and self._after:
            self.fired = True
            self._hook()
        return result


def other_instance(store: TableAccountStore) -> TableAccountStore:
    return TableAccountStore(store._service, store._table_name)


def schedule_rows_of(store: TableAccountStore, account_id: str) -> list[str]:
    rows = store._query("PartitionKey eq @pk", pk="%schedule")
    return sorted(r["RowKey"].split("_")[0] for r in rows if account_id in r["RowKey"])


@pytest.mark.parametrize("when", ["before", "after"])
def test_table_a_take_between_a_writers_steps_never_loses_the_account(
    table_store: TableAccountStore, when: str
) -> None:
    """`before`: another instance takes the account while a verification's write is under way
    (the reported interleaving: it met the writer's new entry and deleted it). `after`: it
    meets the account after its write and before its schedule rows moved."""
    account = linked(table_store)  # never verified: due at once
    taker = other_instance(table_store)
    met: list[Account] = []

    def take() -> None:
        met.extend(taker.take_due(LATER, 10, LEASE, "b"))

    writer = other_instance(table_store)
    writer._client()
    writer._table = Hooked(writer._table, take, after=when == "after")  # type: ignore[assignment]
    saved = verified(writer, account, hours_ago=0)  # due again at NOW + 6 h
    assert writer._table.fired  # type: ignore[attr-defined]
    assert [a.id for a in met] == [account.id]
    # b holds the lease (it is verifying): the write kept it, wherever the account went.
    assert table_store.take_due(LATER, 10, LEASE, "c") == []
    taker.release(met, "b")
    assert table_store.take_due(NOW, 10, LEASE, "c") == []  # not due before NOW + 6 h
    assert [a.id for a in table_store.take_due(LATER, 10, LEASE, "c")] == [saved.id]
    # Whole and single: one anchor and one entry (no renewal moment is due).
    assert schedule_rows_of(table_store, account.id) == ["acc", "last", "renew"]


def test_table_the_sweep_puts_back_accounts_missing_from_the_schedule(
    table_store: TableAccountStore,
) -> None:
    """2,300 accounts (three pages of the sweep), three of them without their schedule rows,
    one per page: each call mends one page and the next goes on where it stopped, whichever
    instance makes it."""
    count, lost = 2_300, (10, 1_200, 2_250)
    # The lost ones are the stalest (never verified, created first): the timer would take them
    # before any other, were they in the schedule.
    accounts = [
        account_for(
            key(),
            created=NOW - timedelta(days=2 if n in lost else 1),
            account_id=str(uuid.UUID(int=n)),
        )
        for n in range(count)
    ]
    table_store._client()
    rows: list[dict[str, Any]] = [
        {"PartitionKey": "owner-a", "RowKey": f"acct_{a.id}", "Kind": "account",
         **account_to_row(a)}
        for a in accounts
    ]  # fmt: skip
    schedule: list[dict[str, Any]] = []
    for n, a in enumerate(accounts):
        if n not in lost:
            schedule += _set_rows(a)
    for batch in (rows, schedule):
        for i in range(0, len(batch), 99):
            table_store._table.submit_transaction([("upsert", r) for r in batch[i : i + 99]])

    def scheduled(store: TableAccountStore) -> set[str]:
        """Accounts with their rows in the schedule: one query of the anchors."""
        anchors = "PartitionKey eq @pk and RowKey ge 'acc_' and RowKey lt 'acc`'"
        return {r["accountId"] for r in store._query(anchors, pk="%schedule")}

    every, missing = {a.id for a in accounts}, {accounts[n].id for n in lost}
    assert scheduled(table_store) == every - missing
    stalest = table_store.take_due(NOW, 3, LEASE, "a")
    assert not missing & {a.id for a in stalest}
    table_store.release(stalest, "a")
    assert not table_store.sweep_schedule(float("inf"), 1, restart=False)  # no pass going on
    assert table_store.sweep_schedule(0.0, 1, restart=True)  # out of time: begun, not swept
    assert scheduled(table_store) == every - missing
    assert table_store.sweep_schedule(float("inf"), 1, restart=True)  # a page, more to come
    assert every - scheduled(table_store) == {accounts[1_200].id, accounts[2_250].id}
    other = other_instance(table_store)
    assert other.sweep_schedule(float("inf"), 1, restart=False)
    assert every - scheduled(table_store) == {accounts[2_250].id}
    assert not other.sweep_schedule(float("inf"), 5, restart=False)  # the last page: over
    assert scheduled(table_store) == every
    # And the timer takes them, before any other.
    assert [a.id for a in table_store.take_due(NOW, 3, LEASE, "a")] == [
        accounts[n].id for n in lost
    ]


def _set_rows(account: Account) -> list[dict[str, Any]]:
    from shared.adapters.accountstore.table.schedule import set_rows

    place = DEFAULT_POLICY.place(account)
    return set_rows("owner-a", "owner-a", account.id, place, account.version)


def in_rotation(account: Account) -> Account:
    """A rotation under way, its new certificate expiring tomorrow: the account's renewal
    moment moves (the schedule moves the account)."""
    rotation = Rotation(
        key={"keyId": str(uuid.uuid4()), "thumbprint": "C" * 40,
             "notAfter": to_rfc3339(NOW + timedelta(days=1))},
        previous_key_id=account.key_id,
        previous_thumbprint=account.thumbprint,
        status="awaiting_upload",
        renewal="manual",
        started_at=NOW,
    )  # fmt: skip
    return account.updated(rotation=rotation)


WRITES: dict[str, Callable[[AccountStore, Account], Account]] = {
    "a rename (nothing moves)": lambda s, a: s.update_account(a.updated(display_name="Renamed")),
    "a rotation started (its renewal moment moves)": lambda s, a: s.update_account(in_rotation(a)),
    "a customer's verification (its last start moves)": lambda s, a: verified(s, a, hours_ago=7),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_keeps_the_lease_another_instance_holds(store: AccountStore, write: str) -> None:
    account = linked(store)
    [taken] = store.take_due(NOW, 10, LEASE, "a")
    current = store.get_account(account.owner, account.id)
    assert current is not None
    WRITES[write](store, current)
    assert store.take_due(LATER, 10, LEASE, "b") == []  # a is still verifying it
    store.release([taken], "b")  # not b's lease: it stays
    assert store.take_due(LATER, 10, LEASE, "b") == []
    store.release([taken], "a")  # its holder ends it
    assert [a.id for a in store.take_due(LATER, 10, LEASE, "b")] == [account.id]
