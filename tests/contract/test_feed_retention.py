"""Retention of the change feed by feed order, not by time (issue 18, item 12), on both stores.

An event's `at` is taken before its write commits, so near the retention cutoff a later event
(higher sequence number) can carry an older `at` than the one before it. Retention removes each
owner's events from the oldest in feed order and stops at the first one it keeps, so a kept
event never has a removed one behind it; and a reader whose cursor retention has passed is told
(FeedExpired, the route's 410) instead of silently skipping what it never saw."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.adapters.accountstore import AccountStore
from shared.adapters.accountstore.base import FeedExpired
from tests.contract.test_account_store import T0
from tests.contract.test_paging_and_history import event, new_account

CUTOFF = T0 + timedelta(days=1)


def feed_seqs(store: AccountStore, owner: str, after: int | None = None) -> list[int]:
    events, _ = store.events_after(owner, after, 100)
    return [e.seq for e in events]


def test_retention_never_removes_an_event_behind_one_it_keeps(store: AccountStore) -> None:
    account = new_account(store)  # seq 1, `linked` at T0: old
    current = account
    # seq 2 is recent; seq 3's `at` was taken before seq 2's commit, so it is older than the
    # cutoff though it follows a kept event in the feed.
    for seq_at in (T0 + timedelta(days=5), T0):
        current = store.update_account(
            current.updated(status="connected"), [event(current, "verified", at=seq_at)]
        )
    assert feed_seqs(store, "owner-a") == [1, 2, 3]

    assert store.expire_events(CUTOFF, 500) == 1
    assert store.expire_events(CUTOFF, 500) == 0
    assert feed_seqs(store, "owner-a") == [2, 3]  # no gap behind the kept seq 2
    history = store.account_history("owner-a", account.id, 10).items
    assert [e.seq for e in history] == [3, 2]


def test_a_cursor_retention_passed_is_refused_with_where_to_start_again(
    store: AccountStore,
) -> None:
    account = new_account(store)  # seq 1 at T0
    current = account
    for days in (0, 0, 5):  # seq 2 and 3 old, seq 4 recent
        current = store.update_account(
            current.updated(status="connected"),
            [event(current, "verified", at=T0 + timedelta(days=days))],
        )
    _, cursor = store.events_after("owner-a", 0, 1)  # a reader that read seq 1 only
    assert cursor == 1
    assert store.expire_events(CUTOFF, 500) == 3

    with pytest.raises(FeedExpired) as behind:
        store.events_after("owner-a", cursor, 100)
    assert behind.value.oldest == 3
    # Starting again where it says gives every event kept, and nothing is skipped after that.
    events, again = store.events_after("owner-a", behind.value.oldest, 100)
    assert [e.seq for e in events] == [4] and again == 4
    # A reader with no cursor starts from the oldest event kept; one at the head waits.
    assert feed_seqs(store, "owner-a") == [4]
    assert store.events_after("owner-a", 4, 100) == ([], 4)


def test_a_reader_whose_events_were_all_removed_is_told(store: AccountStore) -> None:
    new_account(store)  # seq 1 at T0
    new_account(store)  # seq 2 at T0
    assert store.events_after("owner-a", 0, 100)[1] == 2
    assert store.expire_events(CUTOFF, 500) == 2
    with pytest.raises(FeedExpired) as behind:
        store.events_after("owner-a", 0, 100)
    assert behind.value.oldest == 2
    assert store.events_after("owner-a", None, 100) == ([], 2)
    assert store.events_after("owner-a", 2, 100) == ([], 2)


def test_retention_in_bounded_steps_keeps_feed_order(store: AccountStore) -> None:
    account = new_account(store)
    current = account
    for _ in range(4):
        current = store.update_account(
            current.updated(status="connected"), [event(current, "verified", at=T0)]
        )
    # One event per call: always the oldest remaining, so the kept part never has a hole.
    for remaining in ([2, 3, 4, 5], [3, 4, 5], [4, 5]):
        assert store.expire_events(CUTOFF, 1) == 1
        assert feed_seqs(store, "owner-a") == remaining
