"""The issuer key's records, on both account stores: one record per generation, a claim that
only one of several instances wins, changes that name the version they read, and a place of the
app's own that no owner's list, sweep or retention ever sees."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.accountstore.base import AccountStore, VersionConflict
from shared.core.issuer_keys import CLAIMED, DELETING, PUBLISHED, IssuerKey


def claim(generation: int, now: datetime) -> IssuerKey:
    return IssuerKey(generation, str(uuid.uuid4()), "local", CLAIMED, now)


def published(record: IssuerKey, now: datetime) -> IssuerKey:
    return replace(
        record, state=PUBLISHED, kid="kid-" + record.key_id[:8], n="n-value", e="AQAB",
        published_at=now, use_from=now + timedelta(hours=25),
    )  # fmt: skip


def test_a_claim_is_read_back_whole_and_published_with_its_public_half(
    store: AccountStore,
) -> None:
    now = datetime.now(UTC)
    assert store.issuer_keys() == []
    mine = store.claim_issuer_key(claim(1, now))
    assert mine is not None and mine.version
    assert store.issuer_keys() == [mine]
    done = store.update_issuer_key(published(mine, now + timedelta(seconds=3)))
    assert done.version != mine.version
    (read,) = store.issuer_keys()
    assert read == done
    assert read.complete and read.use_from == now + timedelta(seconds=3, hours=25)


def test_one_generation_is_claimed_once_whoever_asks_at_once(store: AccountStore) -> None:
    now = datetime.now(UTC)
    candidates = [claim(1, now) for _ in range(6)]
    start, won = threading.Barrier(len(candidates)), []

    def race(record: IssuerKey) -> None:
        start.wait()
        if store.claim_issuer_key(record) is not None:
            won.append(record.key_id)

    threads = [threading.Thread(target=race, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert [r.key_id for r in store.issuer_keys()] == won


def test_a_change_under_a_version_read_before_another_change_is_refused(
    store: AccountStore,
) -> None:
    now = datetime.now(UTC)
    first = store.claim_issuer_key(claim(1, now))
    assert first is not None
    mine = store.update_issuer_key(published(first, now))
    with pytest.raises(VersionConflict):  # another instance's stale read of the claim
        store.update_issuer_key(replace(first, state=DELETING))
    with pytest.raises(VersionConflict):
        store.delete_issuer_key(first)
    assert store.issuer_keys() == [mine]
    store.delete_issuer_key(mine)
    assert store.issuer_keys() == []
    store.delete_issuer_key(mine)  # gone already: no error
    with pytest.raises(VersionConflict):
        store.update_issuer_key(mine)


def test_a_generation_claimed_again_is_not_changed_by_the_old_claims_version(
    store: AccountStore,
) -> None:
    now = datetime.now(UTC)
    old = store.claim_issuer_key(claim(2, now))
    assert old is not None
    store.delete_issuer_key(old)  # a stale claim removed...
    new = store.claim_issuer_key(claim(2, now + timedelta(minutes=20)))  # ...and taken again
    assert new is not None
    with pytest.raises(VersionConflict):  # the instance that died wakes up: too late
        store.update_issuer_key(published(old, now))
    with pytest.raises(VersionConflict):
        store.delete_issuer_key(old)
    assert store.issuer_keys() == [new]


def test_records_come_oldest_generation_first_and_stay_out_of_owners_data(
    store: AccountStore,
) -> None:
    now = datetime.now(UTC)
    for generation in (3, 1, 2):
        assert store.claim_issuer_key(claim(generation, now)) is not None
    assert [r.generation for r in store.issuer_keys()] == [1, 2, 3]
    assert list(store.list_keys()) == []
    assert list(store.list_all_accounts()) == []
    assert store.expire_events(now + timedelta(days=1), 100) == 0
    assert [r.generation for r in store.issuer_keys()] == [1, 2, 3]
