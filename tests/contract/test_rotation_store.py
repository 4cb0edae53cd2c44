"""The account store's rules for certificate renewal, on SQLite and on Table Storage (Azurite):
keys bound and released in the account's own transaction, events in order, unlink during and
after a rotation, conditional unlink, and a rotation that reads back exactly as written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.adapters.accountstore import AccountStore, KeyChanges, KeyTaken, VersionConflict
from shared.adapters.accountstore.base import VersionMismatch
from shared.core.model import TIMER, Account, Event, KeyRecord, Rotation
from tests.contract.test_account_store import T0, account_for, key, linked

OWNER = "owner-a"


def event(account: Account, type_: str, detail: str | None = None) -> Event:
    return Event(str(uuid.uuid4()), account.owner, account.id, type_, T0, TIMER, detail=detail)


def new_key(store: AccountStore, account: Account, owner: str = OWNER) -> KeyRecord:
    """A fresh, unbound key for the account's tenant and application (a renewal's key)."""
    record = replace(
        key(owner, account.tenant_id, account.application_id),
        thumbprint=uuid.uuid4().hex[:40].upper(),
    )
    store.add_key(record)
    return record


def rotation_to(account: Account, record: KeyRecord, **fields: object) -> Rotation:
    started = Rotation(
        key=replace(record, account_id=account.id).to_resource(),
        previous_key_id=account.key_id,
        previous_thumbprint=account.thumbprint,
        status="awaiting_upload",
        renewal="manual",
        started_at=T0,
        detail="Upload the new certificate",
    )
    return started.updated(**fields)


def history(store: AccountStore, account: Account) -> list[Event]:
    """The account's events, oldest first."""
    return list(reversed(store.account_history(account.owner, account.id, 100).items))


def started(store: AccountStore) -> tuple[Account, KeyRecord]:
    """A linked account with a rotation in progress whose new key is bound to it."""
    account = linked(store)
    record = new_key(store, account)
    saved = store.update_account(
        account.updated(rotation=rotation_to(account, record)),
        [event(account, "rotation_started")],
        KeyChanges(bind=(record.key_id,)),
    )
    return saved, record


def switched(store: AccountStore) -> tuple[Account, KeyRecord, str]:
    """An account switched to its renewed key; the key it replaced not yet retired."""
    account, record = started(store)
    assert account.rotation is not None
    done = account.rotation.updated(
        status="completed", completed_at=T0, retire_after=T0 + timedelta(days=7)
    )
    saved = store.update_account(
        account.updated(key_id=record.key_id, thumbprint=record.thumbprint, rotation=done),
        [event(account, "rotation_completed")],
    )
    return saved, record, account.key_id


# --- binding in the update's transaction -------------------------------------------------
def test_an_update_that_binds_a_key_binds_it_with_the_update(store: AccountStore) -> None:
    account = linked(store)
    record = new_key(store, account)
    assert store.get_key(OWNER, record.key_id).account_id is None  # type: ignore[union-attr]
    saved = store.update_account(
        account.updated(rotation=rotation_to(account, record)),
        [event(account, "rotation_started")],
        KeyChanges(bind=(record.key_id,)),
    )
    assert saved.version == account.version + 1
    assert store.get_account(OWNER, account.id) == saved
    bound = store.get_key(OWNER, record.key_id)
    assert bound is not None and bound.account_id == account.id and not bound.deleting
    assert [e.type for e in history(store, account)] == ["rotation_started"]
    # Binding a key the account already holds again is no error (a re-decided write).
    again = store.update_account(
        saved.updated(display_name="Again"), [], KeyChanges(bind=(record.key_id,))
    )
    assert again.version == saved.version + 1


def _bound_elsewhere(store: AccountStore, account: Account) -> str:
    other = linked(store)
    return other.key_id


def _being_deleted(store: AccountStore, account: Account) -> str:
    record = new_key(store, account)
    assert store.mark_unused_key_deleting(OWNER, record.key_id)
    return record.key_id


def _missing(store: AccountStore, account: Account) -> str:
    return str(uuid.uuid4())


def _another_owners(store: AccountStore, account: Account) -> str:
    return new_key(store, account, owner="owner-b").key_id


@pytest.mark.parametrize(
    "unusable",
    [_bound_elsewhere, _being_deleted, _missing, _another_owners],
    ids=["bound-to-another-account", "being-deleted", "missing", "another-owners"],
)
def test_a_key_that_cannot_be_bound_raises_key_taken_and_changes_nothing(
    store: AccountStore, unusable: Callable[[AccountStore, Account], str]
) -> None:
    account = linked(store)
    usable = new_key(store, account)  # bound in the same write: must not be bound either
    bad = unusable(store, account)
    keys_before = {k.key_id: k for k in store.list_keys()}
    with pytest.raises(KeyTaken) as taken:
        store.update_account(
            account.updated(rotation=rotation_to(account, usable), display_name="Changed"),
            [event(account, "rotation_started")],
            KeyChanges(bind=(usable.key_id, bad)),
        )
    if unusable is _bound_elsewhere:
        assert taken.value.account_id is not None and taken.value.account_id != account.id
    assert store.get_account(OWNER, account.id) == account  # not the account
    assert {k.key_id: k for k in store.list_keys()} == keys_before  # not a key
    assert history(store, account) == []  # no event
    events, _ = store.events_after(OWNER, 0, 100)
    assert [e.type for e in events] == []


# --- releasing in the update's transaction -----------------------------------------------
def test_release_marks_keys_deleting_with_the_update(store: AccountStore) -> None:
    account, record = started(store)
    assert account.rotation is not None
    cancelled = account.rotation.updated(status="cancelled", completed_at=T0)
    saved = store.update_account(
        account.updated(rotation=cancelled),
        [event(account, "rotation_cancelled")],
        KeyChanges(release=(record.key_id, str(uuid.uuid4()))),  # a missing record: no error
    )
    released = store.get_key(OWNER, record.key_id)
    assert released is not None and released.deleting
    assert store.get_account(OWNER, account.id) == saved
    current = store.get_key(OWNER, account.key_id)
    assert current is not None and not current.deleting  # only what was named
    # A key being deleted can never be bound again, to this account or another.
    with pytest.raises(KeyTaken):
        store.update_account(saved, [], KeyChanges(bind=(record.key_id,)))


def test_a_stale_update_releases_nothing(store: AccountStore) -> None:
    account, record = started(store)
    store.update_account(account.updated(display_name="First"))
    with pytest.raises(VersionConflict):
        store.update_account(
            account.updated(rotation=None),
            [event(account, "rotation_cancelled")],
            KeyChanges(release=(record.key_id,)),
        )
    kept = store.get_key(OWNER, record.key_id)
    assert kept is not None and not kept.deleting
    assert [e.type for e in history(store, account)] == ["rotation_started"]


# --- events -------------------------------------------------------------------------------
def test_an_update_with_two_events_records_both_in_order(store: AccountStore) -> None:
    account = linked(store)
    store.update_account(account.updated(display_name="Before"), [event(account, "updated")])
    current = store.get_account(OWNER, account.id)
    assert current is not None
    record = new_key(store, account)
    store.update_account(
        current.updated(rotation=rotation_to(account, record)),
        [
            event(account, "certificate_expiring", "first"),
            event(account, "rotation_started", "second"),
        ],
        KeyChanges(bind=(record.key_id,)),
    )
    kept = history(store, account)
    assert [(e.type, e.detail) for e in kept] == [
        ("updated", None),
        ("certificate_expiring", "first"),
        ("rotation_started", "second"),
    ]
    seqs = [e.seq for e in kept]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[2] == seqs[1] + 1
    feed, _ = store.events_after(OWNER, 0, 100)
    assert [e.id for e in feed] == [e.id for e in kept]


# --- unlink --------------------------------------------------------------------------------
def test_unlink_during_a_rotation_marks_both_keys_deleting(store: AccountStore) -> None:
    account, record = started(store)
    removed = store.unlink(OWNER, account.id, [event(account, "unlinked")])
    assert removed == account
    assert store.get_account(OWNER, account.id) is None
    for key_id in (account.key_id, record.key_id):
        marked = store.get_key(OWNER, key_id)
        assert marked is not None and marked.deleting, key_id
    assert [e.type for e in history(store, account)] == ["rotation_started", "unlinked"]


def test_unlink_after_a_switch_marks_the_previous_key_too(store: AccountStore) -> None:
    account, record, previous = switched(store)
    assert store.unlink(OWNER, account.id) == account
    for key_id in (record.key_id, previous):
        marked = store.get_key(OWNER, key_id)
        assert marked is not None and marked.deleting, key_id


def test_unlink_after_retirement_marks_only_the_current_key(store: AccountStore) -> None:
    account, record, previous = switched(store)
    assert account.rotation is not None
    retired = store.update_account(
        account.updated(rotation=account.rotation.updated(previous_retired_at=T0)),
        [],
        KeyChanges(release=(previous,)),
    )
    store.delete_key(OWNER, previous)  # as the retirement does once the key store confirmed
    assert store.unlink(OWNER, retired.id) == retired
    marked = store.get_key(OWNER, record.key_id)
    assert marked is not None and marked.deleting
    assert store.get_key(OWNER, previous) is None


def test_unlink_with_a_stale_version_removes_nothing(store: AccountStore) -> None:
    account, record = started(store)
    current = store.update_account(account.updated(display_name="Renamed"))
    with pytest.raises(VersionMismatch):
        store.unlink(OWNER, account.id, [event(account, "unlinked")], version=account.version)
    assert store.get_account(OWNER, account.id) == current
    for key_id in (account.key_id, record.key_id):
        kept = store.get_key(OWNER, key_id)
        assert kept is not None and not kept.deleting and kept.account_id == account.id
    assert [e.type for e in history(store, account)] == ["rotation_started"]
    # The current version unlinks.
    assert store.unlink(OWNER, account.id, version=current.version) == current
    assert store.get_account(OWNER, account.id) is None


# --- reading a rotation back -----------------------------------------------------------------
ROTATION_STATES = {
    "awaiting-manual": {},
    "awaiting-automatic": {"renewal": "automatic", "add_key": "refused",
                           "detail": "CredentialInvalidLifetimeAsPerAppPolicy: « trop long » ✓"},
    "completed": {"status": "completed", "completed_at": T0 + timedelta(hours=1),
                  "retire_after": T0 + timedelta(days=7, hours=1), "renewal": "automatic",
                  "add_key": "done", "remove_key": "pending"},
    "retired": {"status": "completed", "completed_at": T0 + timedelta(hours=1),
                "retire_after": T0 + timedelta(days=7),
                "previous_retired_at": T0 + timedelta(days=8),
                "renewal": "automatic", "add_key": "done", "remove_key": "done"},
    "cancelled": {"status": "cancelled", "completed_at": T0, "detail": None},
    "failed": {"status": "failed", "completed_at": T0 + timedelta(days=400)},
}  # fmt: skip


@pytest.mark.parametrize("state", list(ROTATION_STATES))
def test_a_rotation_reads_back_exactly_on_every_read(store: AccountStore, state: str) -> None:
    account = linked(store)
    record = new_key(store, account)
    rotation = rotation_to(account, record, **ROTATION_STATES[state])
    saved = store.update_account(
        account.updated(certificate_renewal="automatic", rotation=rotation),
        [],
        KeyChanges(bind=(record.key_id,)),
    )
    expected = saved.to_resource()
    assert expected["certificateRenewal"] == "automatic"
    assert expected["rotation"] == rotation.to_resource(account.id)
    read = store.get_account(OWNER, account.id)
    assert read is not None and read.to_resource() == expected
    assert read.rotation == rotation
    (paged,) = store.page_accounts(OWNER, 10).items
    assert paged.to_resource() == expected


def test_an_account_without_a_rotation_reads_back_as_manual_and_none(store: AccountStore) -> None:
    account = linked(store)
    read = store.get_account(OWNER, account.id)
    assert read is not None
    assert (read.certificate_renewal, read.rotation) == ("manual", None)
    assert read.to_resource() == account.to_resource()
    # And a rotation removed again reads back as none, not as the old one.
    record = new_key(store, account)
    with_one = store.update_account(
        account.updated(rotation=rotation_to(account, record)),
        [],
        KeyChanges(bind=(record.key_id,)),
    )
    store.update_account(with_one.updated(rotation=None))
    assert store.get_account(OWNER, account.id).rotation is None  # type: ignore[union-attr]


def test_link_refuses_a_key_bound_to_another_accounts_rotation(store: AccountStore) -> None:
    account, record = started(store)
    other = account_for(store.get_key(OWNER, record.key_id)).updated(  # type: ignore[arg-type]
        application_id=str(uuid.uuid4())
    )
    with pytest.raises(KeyTaken) as taken:
        store.link(other)
    assert taken.value.account_id == account.id
