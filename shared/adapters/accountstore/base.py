"""The account store's interface. Backends: `sqlite` (embedded) and `table` (Azure Table Storage).

The store owns the rules that must hold atomically: one account per owner + tenant + application,
a key bound to at most one account, and no lost update (every update names the version it read).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from shared.core.issuer_keys import IssuerKey
from shared.core.model import Account, Event, KeyRecord

T = TypeVar("T")
# Where a page of accounts goes on: the sort key of the last account shown (codec.account_sort_key).
_ACCOUNT_POSITION = re.compile(r"[0-9]{12}_[0-9A-Za-z-]{1,64}")
_SEQ = re.compile(r"[0-9]{1,16}")


class BadPosition(ValueError):
    """A continuation the store never handed out (forged, garbled or of another list)."""


class FeedExpired(Exception):
    """A feed cursor behind the oldest event kept; `oldest` is the cursor to start again from."""

    def __init__(self, oldest: int) -> None:
        super().__init__(str(oldest))
        self.oldest = oldest


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; `next` is where the next page starts (None: this is the last)."""

    items: list[T]
    next: str | None


def account_position(text: str) -> str:
    if not _ACCOUNT_POSITION.fullmatch(text):
        raise BadPosition(text)
    return text


def seq_position(text: str) -> int:
    if not _SEQ.fullmatch(text):
        raise BadPosition(text)
    return int(text)


class PairTaken(Exception):
    """The owner already linked this tenant + application."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"already linked as account {account_id}")
        self.account_id = account_id


class KeyTaken(Exception):
    """The key is bound to another account, or is no longer usable."""

    def __init__(self, account_id: str | None) -> None:
        super().__init__("key already used by an account" if account_id else "key not usable")
        self.account_id = account_id


class VersionMismatch(Exception):
    """The caller named a version of the account (`If-Match`) that is no longer current."""

    def __init__(self, account_id: str) -> None:
        super().__init__(account_id)
        self.account_id = account_id


@dataclass(frozen=True)
class KeyChanges:
    """Key records an account update changes in the same transaction: keys it `bind`s to the
    account (a rotation's new key: it must be this owner's, unbound or already this account's,
    and not being deleted, else KeyTaken) and keys it `release`s (marked `deleting`: no account
    can use them any more; a missing record is no error)."""

    bind: tuple[str, ...] = ()
    release: tuple[str, ...] = ()


NO_KEY_CHANGES = KeyChanges()


class VersionConflict(Exception):
    """A store fact: the record changed since it was read. The caller reads again and decides
    again (`shared.support.optimistic`); one that gives up lets it through, and the HTTP edge
    answers it as `AccountBusy` (a 503 with `Retry-After`, never a 500)."""

    detail = "changed by another writer since it was read"  # for logs: names nothing

    def __init__(self, record_id: str) -> None:
        super().__init__(self.detail)
        self.record_id = record_id


def store_identity(backend: str, name: str) -> str:
    """`backend:name`, short enough for a Key Vault tag value (256 characters)."""
    identity = f"{backend}:{name}"
    if len(identity) <= 200:
        return identity
    return f"{backend}:sha256:{hashlib.sha256(name.encode()).hexdigest()}"


# One part per kind of record, so a use case names the part it needs; a backend implements all
# (AccountStore): one store keeps the rules that span them (a link binds a key) in one transaction.


class KeyRecords(ABC):
    """The key records: one per key pair generated, bound to at most one account."""

    # Which store this is (backend + table or file): the orphan sweep touches only its keys.
    identity: str

    @abstractmethod
    def add_key(self, record: KeyRecord) -> None:
        """Create a key record. Its private key is already in the key store."""

    @abstractmethod
    def get_key(self, owner: str, key_id: str) -> KeyRecord | None:
        """The owner's key record (also one being deleted), or None."""

    @abstractmethod
    def delete_key(self, owner: str, key_id: str) -> None:
        """Remove a key record; a missing record is not an error."""

    @abstractmethod
    def list_keys(self) -> Iterator[KeyRecord]:
        """Every key record of every owner (housekeeping)."""

    @abstractmethod
    def mark_unused_key_deleting(self, owner: str, key_id: str) -> bool:
        """Mark the key `deleting` if no account uses it, atomically against `link`.

        True when the key is now marked (or already was): no account can bind it any more and
        its deletion can go ahead. False when an account uses it or the record is gone.
        """


class Accounts(ABC):
    """The linked accounts: link, read, list, count, update and unlink."""

    @abstractmethod
    def link(self, account: Account, events: Sequence[Event] = ()) -> None:
        """Create the account, bind its key and record `events`, atomically.

        Raises PairTaken when the owner already has this tenant + application, KeyTaken when the
        key is bound to another account or is being deleted.
        """

    @abstractmethod
    def get_account(self, owner: str, account_id: str) -> Account | None: ...

    @abstractmethod
    def page_accounts(
        self, owner: str, top: int, after: str | None = None, status: str | None = None
    ) -> Page[Account]:
        """Up to `top` of the owner's accounts after position `after`, newest first, ties by id,
        in ONE store query. Positions are the sort key of (createdAt, id), which never changes,
        so a page's continuation stays valid while accounts come and go. Raises BadPosition."""

    @abstractmethod
    def count_accounts(self, owner: str) -> tuple[int, int]:
        """(linked, connected) accounts of the owner, without reading every account."""

    @abstractmethod
    def list_all_accounts(self) -> Iterator[Account]:
        """Every account of every owner (tests and one-off tools; the timer uses `take_due`)."""

    @abstractmethod
    def update_account(
        self,
        account: Account,
        events: Sequence[Event] = (),
        keys: KeyChanges = NO_KEY_CHANGES,
    ) -> Account:
        """Replace the account if it is still at `account.version`, record `events` and make
        the key changes with it, atomically; return the account at the next version.

        Raises VersionConflict when another update came first, LookupError when it is gone,
        KeyTaken when a key to bind cannot be bound.
        """

    @abstractmethod
    def unlink(
        self,
        owner: str,
        account_id: str,
        events: Sequence[Event] = (),
        *,
        version: int | None = None,
    ) -> Account | None:
        """Remove the account, mark every key bound to it (`Account.key_ids`) as being deleted
        and record `events` (their `previous_status` set to the account's), atomically.

        Returns the removed account, or None when the owner has no such account. With
        `version`, raises VersionMismatch unless the account is still at that version.
        """


class Schedule(ABC):
    """The health check's schedule of accounts, and the chores instances take turns on."""

    @abstractmethod
    def take_due(
        self, due_by: datetime, limit: int, lease: timedelta, holder: str
    ) -> list[Account]:
        """Up to `limit` accounts due by `due_by` under the store policy's interval (the one in
        force: `SchedulePolicy.due_by`), stalest first, each leased to `holder` for `lease`
        from now (the real clock): another instance does not take an account while its lease
        runs, and takes it again once it expired (an instance died). Writes of the account
        keep the lease; only its holder's `release` ends it. An empty list means no unleased
        account is due (never that another instance won the race for this batch). Reads only
        the due entries of the schedule, never every account; an entry that disagrees with
        its account is mended on the way."""

    @abstractmethod
    def release(self, accounts: Sequence[Account], holder: str) -> None:
        """End `holder`'s leases on these accounts (verified, or taken but not reached: the
        next run takes those at once); another holder's lease stays."""

    @abstractmethod
    def claim_chore(self, name: str, now: datetime, every: timedelta) -> bool:
        """True when the chore `name` last ran `every` or longer ago (or never), and now
        counts as its run: of instances asking at once, one gets True. `every` 0: always."""

    @abstractmethod
    def prepare_schedule(self, stop_at: float) -> None:
        """Give accounts of an older release their schedule entries (bounded by `stop_at`, a
        `time.monotonic()` deadline; later calls go on)."""

    @abstractmethod
    def sweep_schedule(self, stop_at: float, pages: int, *, restart: bool) -> bool:
        """Go on with a pass over every account that gives each account missing from the
        schedule its entries (`restart`: begin a pass when none is going on), reading at most
        `pages` pages and stopping at `stop_at`; later calls go on where it stopped. True
        while the pass is not over."""


class History(ABC):
    """The events: each account's history and each owner's change feed, and their retention."""

    @abstractmethod
    def account_history(
        self, owner: str, account_id: str, top: int, after: str | None = None
    ) -> Page[Event]:
        """One account's events (also of an unlinked account, until retention removes them),
        newest first, `top` at most per page. Raises BadPosition."""

    @abstractmethod
    def events_after(self, owner: str, after: int | None, top: int) -> tuple[list[Event], int]:
        """The owner's events with a sequence number above `after` (None: from the oldest
        kept), oldest first, and the cursor to pass next. Raises BadPosition for a cursor the
        feed never reached, FeedExpired for one behind the oldest event kept (retention removed
        events after it: the reader would skip them silently)."""

    @abstractmethod
    def expire_events(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` events that happened before `before`, each owner's oldest
        first in feed order: an event goes only with every event before it, so retention
        never leaves a gap behind a kept event (and a cursor in a gap is FeedExpired)."""


class IssuerKeyRecords(ABC):
    """The issuer key's records (shared.core.issuer_keys), one per generation, in a place of the
    app's own. A claim inserts a record unless its generation has one (None: another instance
    claimed it first); an update or delete names the version it read (else VersionConflict)."""

    @abstractmethod
    def issuer_keys(self) -> list[IssuerKey]: ...  # every record, oldest first, in one read

    @abstractmethod
    def claim_issuer_key(self, record: IssuerKey) -> IssuerKey | None: ...

    @abstractmethod
    def update_issuer_key(self, record: IssuerKey) -> IssuerKey: ...  # at its new version

    @abstractmethod
    def delete_issuer_key(self, record: IssuerKey) -> None: ...  # one gone already: no error


class AccountStore(KeyRecords, Accounts, Schedule, History, IssuerKeyRecords):
    """The whole store, as a backend implements it."""

    backend: str

    @abstractmethod
    def ping(self) -> None:
        """Raise DependencyUnavailable when the store cannot be reached."""
