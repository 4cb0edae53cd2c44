"""The account store on Azure Table Storage (Azurite in tests).

One partition per owner, so every rule that must hold atomically is an entity-group transaction
inside it: creating the account, its tenant + application uniqueness row ("pair") and binding the
key happen together or not at all. Updates carry the ETag they read (optimistic concurrency).

A table deleted under the running app (an operator, a storage account made again) is created
again on the first call that finds it gone, and that call runs once more; a table Azure is still
deleting answers 503 until it can be made.

Rows of an owner's partition:
- `acct_<id>`: the account (point reads, ETag-checked updates).
- `acctidx_<inverted createdAt second>_<id>`: a copy of the account whose RowKey sorts newest
  first, ties by id: a page of the list is ONE range query on it (`RowKey gt <last shown>`), the
  `status` filter in the same query. Every transaction that writes `acct_` writes it too.
- `meta`: the owner's event sequence number and account counts (`GET /api/onboarding` is one
  point read of it).
- `evt_<seq>` (the change feed, in sequence order) and `hist_<id>_<inverted seq>` (one
  account's history, newest first): each event's two rows.

Why the feed never skips or repeats an event. Every change that records an event runs one
entity-group transaction that (a) updates `meta` from seq s to s+1 under the ETag it read, and
(b) creates `evt_<s+1>` (and `hist_`) with the change. The transaction is atomic and the ETag
makes the `meta` updates a chain: the writer of s+1 read `meta` at s, which exists only once the
transaction of s committed; a writer that lost the race fails as a whole and retries with a
fresh `meta`. So the committed events are always exactly 1..S with S the seq in `meta`, and
`evt_<n>` never appears after `meta` says S >= n. The feed reads `meta` (S) first, then the
range (after, S]: every row there is committed and the range can never gain a row later. A
reader that passes back the cursor (the last seq returned, or S when the range was exhausted)
therefore sees each event exactly once, in sequence order, whatever instances write meanwhile.
Retention removes the oldest events only.

First-release partitions have no `meta` or `acctidx_` rows: the first write or list that needs
`meta` counts the owner's accounts and creates it (no counted change can commit before `meta`
exists, as every such change updates it), and the first list backfills the index rows, each in
a transaction with an ETag check of its account.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    TableClient,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from shared.adapters.accountstore.base import (
    NO_KEY_CHANGES,
    AccountStore,
    BadPosition,
    FeedExpired,
    KeyChanges,
    KeyTaken,
    Page,
    PairTaken,
    VersionConflict,
    VersionMismatch,
    account_position,
    seq_position,
    store_identity,
)
from shared.adapters.accountstore.codec import (
    account_from_row,
    account_sort_key,
    account_to_row,
    event_from_row,
    event_to_row,
    join_report,
    key_from_row,
    key_to_row,
    split_report,
)
from shared.adapters.http.azure_pipeline import client_options
from shared.core.errors import DependencyUnavailable
from shared.core.model import Account, Event, KeyRecord
from shared.core.schedule import DEFAULT_POLICY, Place, SchedulePolicy
from shared.core.settings import TableSettings
from shared.support.deadline import deadline_at
from shared.support.striped import StripedLocks
from shared.support.timefmt import to_rfc3339

T = TypeVar("T")
# Bounded retries and timeouts: a storage outage must become a prompt 503, not a hung request.
_CLIENT_OPTIONS: dict[str, Any] = client_options()
_KEY, _ACCOUNT, _PAIR = "key_", "acct_", "pair_"
_INDEX, _EVENT, _HISTORY, _META = "acctidx_", "evt_", "hist_", "meta"
_SEQ_CEILING = 10**16 - 1
# Where the retention sweep's cross-partition scan resumes ('%' is escaped in every owner's
# PartitionKey, so no owner has this one).
_SWEEP = ("%housekeeping", "events")
_SWEEP_PAGES = 5  # service pages a sweep reads at most per call
# The health check's schedule: a partition of its own ('%' is escaped in owners' keys) holding a
# set of rows per account, always written together in one entity-group transaction (a set is
# never half-moved): its anchor `acc_<owner>!<id>`, found by account (leases, the sweep), and its
# entries `last_<last>_<owner>_<id>` and, with a renewal moment, `renew_<renew>_<owner>_<id>`:
# the two orderings `take_due` reads (schedule.Place). Every row of a set carries the set's
# place, its lease and the account version it was placed from. `sweep`: the pass that gives
# accounts without a set theirs. `due_`: the second release's entries (removed on upgrade).
_SCHEDULE, _ANCHOR, _LAST, _RENEW = "%schedule", "acc_", "last_", "renew_"
_SWEEP_STATE, _LEGACY_DUE = "sweep", "due_"
_SET_TRIES = 5  # a set changed under a writer is read again this often at most
_SETS_PER_TRANSACTION = 30  # three rows each at most: 100 operations per transaction
# A set whose account is missing is removed only when older than this: a link writes the set
# just before the account, and the timer may meet it in between.
_ORPHAN_ENTRY_SECONDS = 120
_NEW_SWEEP = {"PartitionKey": _SCHEDULE, "RowKey": _SWEEP_STATE, "Kind": "sweep",
              "active": False, "continuation": "", "migrated": True, "ready": True}  # fmt: skip
MAX_PAGE = 1000  # the service's most entities per query page
# Writers of one owner take turns on its `meta` row; the loser of a race tries again, with
# jittered exponential back-off, for this long (or until the unit of work's deadline, if sooner)
# before it answers 503.
_CONTENDED_SECONDS = 15.0
# The health probe's point read: no row has this RowKey, so it answers 404 (reachable) at once.
_PROBE = ("health", "probe")
_SYSTEM = {"PartitionKey", "RowKey", "Timestamp", "Kind"}


def partition_of(owner: str) -> str:
    """An owner as a PartitionKey: `/ \\ # ?` and control characters are not allowed there."""
    return quote(owner, safe="")


def _prefix_filter(prefix: str) -> str:
    # Every RowKey that starts with the prefix: [prefix, prefix with its last char + 1).
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"RowKey ge '{prefix}' and RowKey lt '{upper}'"


def _upper(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _anchor_rk(pk: str, account_id: str) -> str:
    # '!' sorts before every character of an escaped owner, so anchors sort as accounts do
    # (PartitionKey, then id): the sweep reads a page of accounts' anchors in one range.
    return f"{_ANCHOR}{pk}!{account_id}"


def set_rows(
    pk: str,
    owner: str,
    account_id: str,
    place: Place,
    version: int,
    lease: tuple[int, str] = (0, ""),
) -> list[dict[str, Any]]:
    """An account's rows in the schedule (see `_SCHEDULE`), its anchor first."""
    common = {"PartitionKey": _SCHEDULE, "Kind": "scheduled", "owner": owner,
              "accountId": account_id, "last": place.last, "renew": place.renew or "",
              "version": version, "leaseUntil": lease[0], "leaseHolder": lease[1],
              "writtenAt": int(time.time())}  # fmt: skip
    keys = [_anchor_rk(pk, account_id), f"{_LAST}{place.last}_{pk}_{account_id}"]
    if place.renew is not None:
        keys.append(f"{_RENEW}{place.renew}_{pk}_{account_id}")
    return [{**common, "RowKey": key} for key in keys]


def _place_of(row: Any) -> Place:
    return Place(str(row["last"]), str(row["renew"] or "") or None)


def _set_keys(row: Any) -> list[str]:
    """The RowKeys of the set a schedule row belongs to."""
    owner = str(row["owner"])
    place = _place_of(row)
    return [r["RowKey"] for r in set_rows(partition_of(owner), owner, row["accountId"], place, 0)]


def _accounts_page(table: TableClient, token: Any) -> tuple[list[Any], Any]:
    """One service page of every owner's accounts from `token`, and where the next starts."""
    pages: Any = table.query_entities(_prefix_filter(_ACCOUNT), results_per_page=MAX_PAGE).by_page(
        continuation_token=token
    )
    return list(next(pages, [])), pages.continuation_token


def _event_rk(seq: int) -> str:
    return f"{_EVENT}{seq:016d}"


def _history_rk(account_id: str, seq: int) -> str:
    return f"{_HISTORY}{account_id}_{_SEQ_CEILING - seq:016d}"


def _index_entity(pk: str, account: Account) -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": _INDEX + account_sort_key(account.created_at, account.id),
        "Kind": "accountindex",
        **split_report(account_to_row(account)),
    }


def _row(entity: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(entity).items() if k not in _SYSTEM}


def build_service(settings: TableSettings) -> TableServiceClient:
    if settings.connection_string:
        return TableServiceClient.from_connection_string(
            settings.connection_string, **_CLIENT_OPTIONS
        )
    from azure.identity import DefaultAzureCredential  # only identity-based deployments pay for it

    assert settings.table_service_uri
    credential = DefaultAzureCredential(
        managed_identity_client_id=settings.managed_identity_client_id
    )
    return TableServiceClient(
        endpoint=settings.table_service_uri, credential=credential, **_CLIENT_OPTIONS
    )


class TableAccountStore(AccountStore):
    backend = "table"

    def __init__(
        self,
        service: TableServiceClient,
        table_name: str,
        policy: SchedulePolicy = DEFAULT_POLICY,
    ) -> None:
        self._service = service
        self.policy = policy
        # A TableClient of its own rather than service.get_table_client(): the latter wraps the
        # transport so that retry sleeps bypass the deadline-aware transport (azure_pipeline).
        self._table: TableClient = TableClient(
            endpoint=service.url,
            table_name=table_name,
            credential=service.credential,
            **_CLIENT_OPTIONS,
        )
        self._table_name = table_name
        self.identity = store_identity(self.backend, f"{service.account_name}/{table_name}")
        self._ready = False
        self._lock = threading.Lock()
        self._indexed: set[str] = set()  # partitions known to have their index rows
        self._turns = StripedLocks()  # writers of one owner take turns (see _contended)

    # --- plumbing ----------------------------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Map transport and server failures to one 503-shaped error."""
        try:
            yield
        except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
            raise
        except TableTransactionError:
            raise
        except HttpResponseError as exc:
            if exc.status_code is None or _transient(exc):
                raise DependencyUnavailable("account store") from exc
            raise
        except AzureError as exc:
            raise DependencyUnavailable("account store") from exc

    def _client(self) -> TableClient:
        if not self._ready:
            with self._lock, self._guard():
                if not self._ready:
                    try:
                        self._service.create_table(self._table_name)
                    except ResourceExistsError:
                        pass
                    else:  # a table this release made holds no account without its set
                        self._table.upsert_entity(_NEW_SWEEP, mode=UpdateMode.REPLACE)
                    self._ready = True
        return self._table

    def _call(self, operation: Callable[[TableClient], T]) -> T:
        """One SDK call; when it finds the table gone, create the table again and call once more."""
        with self._guard():
            try:
                return operation(self._client())
            except (ResourceNotFoundError, TableTransactionError) as exc:
                if not _table_missing(exc):
                    raise
            with self._lock:
                self._ready = False
            try:
                return operation(self._client())
            except (ResourceNotFoundError, TableTransactionError) as exc:
                if not _table_missing(exc):
                    raise
                # Azure refuses to create a table it is still deleting (409, swallowed by
                # create_table_if_not_exists): try again later, and create it then.
                with self._lock:
                    self._ready = False
                raise DependencyUnavailable(
                    "account store", "the accounts table is being created; try again shortly"
                ) from exc

    def _transaction(self, operations: list[Any]) -> None:
        self._call(lambda table: table.submit_transaction(operations))

    def _delete(self, pk: str, rk: str) -> None:
        self._call(lambda table: table.delete_entity(pk, rk))

    def _get(self, pk: str, rk: str) -> Any | None:
        try:
            return self._call(lambda table: table.get_entity(pk, rk))
        except ResourceNotFoundError:
            return None

    def _query(self, filter_: str, **params: Any) -> list[Any]:
        return self._call(
            lambda table: list(
                table.query_entities(filter_, parameters=params, results_per_page=1000)
            )
        )

    def _contended(self, pk: str, attempt: Callable[[], T], name: str) -> T:
        """`_retrying` for writes that take a turn on the owner's `meta` row: a bounded time
        rather than a number of tries, as a busy owner's writers lose races often. Writers of
        one process take turns on a lock first, so only other instances make them lose (the
        ETag check, not the lock, is what keeps events in order)."""
        turn = self._turns.of(pk)
        give_up = time.monotonic() + _CONTENDED_SECONDS
        at = deadline_at()  # the unit of work's deadline, when it has one, bounds the wait too
        if at is not None:
            give_up = min(give_up, at)
        n = 0
        while True:
            if not turn.acquire(timeout=max(give_up - time.monotonic(), 0.001)):
                raise VersionConflict(name)
            try:
                return attempt()
            except _Stale as exc:
                if time.monotonic() >= give_up:
                    raise VersionConflict(name) from exc
            finally:
                turn.release()
            n += 1
            pause = random.uniform(0, min(0.2, 0.004 * 2 ** min(n, 6)))  # noqa: S311
            time.sleep(max(min(pause, give_up - time.monotonic()), 0.0))

    def _retrying(self, attempt: Callable[[], T], name: str, tries: int = 5) -> T:
        """Re-run a read-check-write whose ETag went stale under a concurrent writer."""
        for _ in range(tries - 1):
            try:
                return attempt()
            except _Stale:
                continue
        try:
            return attempt()
        except _Stale as exc:
            raise VersionConflict(name) from exc

    # --- keys --------------------------------------------------------------------------------
    def add_key(self, record: KeyRecord) -> None:
        entity = {
            "PartitionKey": partition_of(record.owner),
            "RowKey": _KEY + record.key_id,
            "Kind": "key",
            **key_to_row(record),
        }
        try:
            self._call(lambda table: table.create_entity(entity))
        except ResourceExistsError:
            # azure-core retries an insert answered 5xx; if the first one landed, the retry
            # meets it. The same record is the insert done; anything else is a real clash.
            if self.get_key(record.owner, record.key_id) != record:
                raise

    def get_key(self, owner: str, key_id: str) -> KeyRecord | None:
        entity = self._get(partition_of(owner), _KEY + key_id)
        return key_from_row(_row(entity)) if entity else None

    def delete_key(self, owner: str, key_id: str) -> None:
        self._call(lambda table: table.delete_entity(partition_of(owner), _KEY + key_id))

    def list_keys(self) -> Iterator[KeyRecord]:
        return (key_from_row(_row(e)) for e in self._query(_prefix_filter(_KEY)))

    def mark_unused_key_deleting(self, owner: str, key_id: str) -> bool:
        pk, rk = partition_of(owner), _KEY + key_id

        def attempt() -> bool:
            entity = self._get(pk, rk)
            if entity is None or entity.get("accountId"):
                return False
            if entity.get("deleting"):
                return True
            # The ETag read here is the one `link` must also match to bind the key: whichever
            # write lands first makes the other fail.
            change = {"PartitionKey": pk, "RowKey": rk, "deleting": True}
            etag = entity.metadata["etag"]
            try:
                self._call(
                    lambda table: table.update_entity(
                        change,
                        mode=UpdateMode.MERGE,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                )
            except ResourceModifiedError as exc:
                raise _Stale from exc
            except ResourceNotFoundError:
                return False
            return True

        return self._retrying(attempt, key_id)

    # --- accounts ----------------------------------------------------------------------------
    def link(self, account: Account, events: Sequence[Event] = ()) -> None:
        pk = partition_of(account.owner)
        pair_rk = f"{_PAIR}{account.tenant_id}_{account.application_id}"
        # The schedule set first: an account is never without one (see take_due).
        place = self.policy.place(account)
        self._set_change(
            [("create", r) for r in set_rows(pk, account.owner, account.id, place, account.version)]
        )
        try:
            self._link(account, events, pk, pair_rk)
        except BaseException:
            with suppress(DependencyUnavailable):  # else removed when met (see take_due)
                self._drop_set(account.owner, account.id)
            raise

    def _link(self, account: Account, events: Sequence[Event], pk: str, pair_rk: str) -> None:

        def attempt() -> None:
            key_entity = self._get(pk, _KEY + account.key_id)
            if key_entity is None or key_entity.get("deleting") or key_entity.get("accountId"):
                raise self._broken_rule(pk, pair_rk, key_entity)
            meta = self._ensure_meta(pk)
            operations: list[Any] = [
                ("create", {"PartitionKey": pk, "RowKey": _ACCOUNT + account.id, "Kind": "account",
                            **split_report(account_to_row(account))}),
                ("create", {"PartitionKey": pk, "RowKey": pair_rk, "Kind": "pair",
                            "accountId": account.id}),
                ("update", {"PartitionKey": pk, "RowKey": _KEY + account.key_id,
                            "accountId": account.id},
                 {"mode": UpdateMode.MERGE, "etag": key_entity.metadata["etag"],
                  "match_condition": MatchConditions.IfNotModified}),
                ("create", _index_entity(pk, account)),
                *_meta_operations(pk, meta, events, 1, account.status == "connected"),
            ]  # fmt: skip
            try:
                self._call(lambda table: table.submit_transaction(operations))
            except TableTransactionError as exc:
                if _transient(exc):
                    raise DependencyUnavailable("account store") from exc
                # Another link came first (say which rule it broke), or `meta` moved on.
                key_now = self._get(pk, _KEY + account.key_id)
                pair = self._get(pk, pair_rk)
                if (
                    pair is not None
                    or key_now is None
                    or key_now.get("deleting")
                    or (key_now.get("accountId"))
                ):
                    raise self._broken_rule(pk, pair_rk, key_now) from exc
                raise _Stale from exc

        self._contended(pk, attempt, account.id)

    def _broken_rule(self, pk: str, pair_rk: str, key_entity: Any | None) -> Exception:
        pair = self._get(pk, pair_rk)
        if pair is not None:
            return PairTaken(pair["accountId"])
        return KeyTaken((key_entity or {}).get("accountId") or None)

    # --- the owner's meta row, the index backfill --------------------------------------------
    def _ensure_meta(self, pk: str, *, reading: bool = False) -> Any:
        """The owner's `meta` row, made (with the counts of the accounts there) when missing.
        A read of an owner with no account at all writes nothing (None)."""
        meta = self._get(pk, _META)
        if meta is not None:
            return meta
        rows = self._query(f"PartitionKey eq @pk and {_prefix_filter(_ACCOUNT)}", pk=pk)
        if reading and not rows:
            return None
        entity = {
            "PartitionKey": pk,
            "RowKey": _META,
            "Kind": "meta",
            "seq": 0,
            "linked": len(rows),
            "connected": sum(1 for r in rows if r.get("status") == "connected"),
            "indexed": not rows,
        }
        # Another writer that made it first counted the same accounts: its counts are as good.
        with suppress(ResourceExistsError):
            self._call(lambda table: table.create_entity(entity))
        meta = self._get(pk, _META)
        if meta is None:
            raise DependencyUnavailable("account store")
        return meta

    def _ensure_indexed(self, pk: str) -> None:
        """Give a first-release partition its `acctidx_` rows, once."""
        if pk in self._indexed:
            return
        meta = self._ensure_meta(pk, reading=True)
        if meta is None:
            return  # nothing to index; a first write makes `meta`
        if not meta.get("indexed"):
            for entity in self._query(f"PartitionKey eq @pk and {_prefix_filter(_ACCOUNT)}", pk=pk):
                account = account_from_row(join_report(_row(entity)))
                operations: list[Any] = [
                    # The ETag check ties the copy to this very version of the account; an
                    # account changed since was copied by the writer that changed it.
                    ("update", {"PartitionKey": pk, "RowKey": entity["RowKey"]},
                     {"mode": UpdateMode.MERGE, "etag": entity.metadata["etag"],
                      "match_condition": MatchConditions.IfNotModified}),
                    ("upsert", _index_entity(pk, account), {"mode": UpdateMode.REPLACE}),
                ]  # fmt: skip
                try:
                    self._transaction(operations)
                except TableTransactionError as exc:
                    if _transient(exc):
                        raise DependencyUnavailable("account store") from exc
            change = {"PartitionKey": pk, "RowKey": _META, "indexed": True}
            self._call(lambda table: table.update_entity(change, mode=UpdateMode.MERGE))
        with self._lock:
            self._indexed.add(pk)

    def get_account(self, owner: str, account_id: str) -> Account | None:
        entity = self._get(partition_of(owner), _ACCOUNT + account_id)
        return account_from_row(join_report(_row(entity))) if entity else None

    def page_accounts(
        self, owner: str, top: int, after: str | None = None, status: str | None = None
    ) -> Page[Account]:
        pk = partition_of(owner)
        start = _INDEX + account_position(after) if after is not None else _INDEX
        self._ensure_indexed(pk)
        filter_ = "PartitionKey eq @pk and RowKey gt @start and RowKey lt @end"
        params: dict[str, Any] = {"pk": pk, "start": start, "end": _upper(_INDEX)}
        if status:
            filter_ += " and status eq @status"
            params["status"] = status
        entities, more = self._one_page(filter_, params, min(top + 1, MAX_PAGE))
        shown = entities[:top]
        accounts = [account_from_row(join_report(_row(e))) for e in shown]
        last = shown[-1]["RowKey"][len(_INDEX) :] if shown else None
        return Page(accounts, last if (len(entities) > top or more) and last else None)

    def _one_page(self, filter_: str, params: dict[str, Any], size: int) -> tuple[list[Any], bool]:
        """One query page (`size` at most) and whether the service has more. Only when the
        service answers a page with nothing yet a continuation (a filter that matched none of
        the rows it scanned in its time slice) is the continuation followed."""

        def run(table: TableClient) -> tuple[list[Any], bool]:
            pages: Any = table.query_entities(
                filter_, parameters=params, results_per_page=size
            ).by_page()
            found: list[Any] = []
            for page in pages:
                found.extend(page)
                if found or not pages.continuation_token:
                    break
            return found, bool(pages.continuation_token)

        return self._call(run)

    def _sweep_page(self, filter_: str, params: dict[str, Any], size: int) -> list[Any]:
        state = self._get(*_SWEEP)
        token = json.loads(state["continuation"]) if state and state.get("continuation") else None

        def run(table: TableClient) -> tuple[list[Any], Any]:
            pages: Any = table.query_entities(
                filter_, parameters=params, results_per_page=size
            ).by_page(continuation_token=token)
            found: list[Any] = []
            for n, page in enumerate(pages, start=1):
                found.extend(page)
                if len(found) >= size or n >= _SWEEP_PAGES or not pages.continuation_token:
                    break
            return found, pages.continuation_token

        found, resume = self._call(run)
        saved = {"PartitionKey": _SWEEP[0], "RowKey": _SWEEP[1], "Kind": "sweep",
                 "continuation": json.dumps(resume) if resume else ""}  # fmt: skip
        self._call(lambda table: table.upsert_entity(saved, mode=UpdateMode.REPLACE))
        return found

    def count_accounts(self, owner: str) -> tuple[int, int]:
        meta = self._ensure_meta(partition_of(owner), reading=True) or {}
        return int(meta.get("linked") or 0), int(meta.get("connected") or 0)

    def list_all_accounts(self) -> Iterator[Account]:
        return (
            account_from_row(join_report(_row(e))) for e in self._query(_prefix_filter(_ACCOUNT))
        )

    def update_account(
        self,
        account: Account,
        events: Sequence[Event] = (),
        keys: KeyChanges = NO_KEY_CHANGES,
    ) -> Account:
        pk, rk = partition_of(account.owner), _ACCOUNT + account.id
        new = account.updated(version=account.version + 1)
        place = self.policy.place(new)
        moved: list[bool] = []  # the account left its place in the schedule

        def attempt() -> Account:
            current = self._get(pk, rk)
            if current is None:
                raise LookupError(account.id)
            if int(current["version"]) != account.version:
                raise VersionConflict(account.id)
            # REPLACE, not MERGE: a shorter report must not leave an older report's parts behind.
            entity = {
                "PartitionKey": pk,
                "RowKey": rk,
                "Kind": "account",
                **split_report(account_to_row(new)),
            }
            operations: list[Any] = [
                ("update", entity, {"mode": UpdateMode.REPLACE, "etag": current.metadata["etag"],
                                    "match_condition": MatchConditions.IfNotModified}),
                ("upsert", _index_entity(pk, new), {"mode": UpdateMode.REPLACE}),
                *self._key_operations(pk, account, keys),
            ]  # fmt: skip
            was_connected = current.get("status") == "connected"
            now_connected = new.status == "connected"
            if events or was_connected != now_connected:
                meta = self._ensure_meta(pk)
                operations += _meta_operations(
                    pk, meta, events, 0, int(now_connected) - int(was_connected)
                )
            self._submit_or_stale(operations)
            before = self.policy.place(account_from_row(join_report(_row(current))))
            moved[:] = [before != place]
            return new

        saved = self._contended(pk, attempt, account.id)
        if any(moved):
            # Its schedule set follows the account, after it (a set only moves to a place an
            # account version had, and keeps its lease); one left behind (this instance
            # stopped here, the store went away) is mended when met or swept.
            with suppress(DependencyUnavailable):
                self._settle(saved, place)
        return saved

    def _key_operations(self, pk: str, account: Account, keys: KeyChanges) -> list[Any]:
        """The key records' changes for the account's transaction, each under the ETag read
        here: a key bound or released meanwhile makes the whole transaction stale."""
        operations: list[Any] = []
        for key_id in keys.bind:
            entity = self._get(pk, _KEY + key_id)
            if (
                entity is None
                or entity.get("deleting")
                or (entity.get("accountId") or account.id) != account.id
            ):
                raise KeyTaken((entity or {}).get("accountId") or None)
            operations.append(_key_merge(pk, entity, accountId=account.id))
        for key_id in keys.release:
            entity = self._get(pk, _KEY + key_id)
            if entity is not None:
                operations.append(_key_merge(pk, entity, deleting=True))
        return operations

    def _submit_or_stale(self, operations: list[Any]) -> None:
        try:
            self._call(lambda table: table.submit_transaction(operations))
        except TableTransactionError as exc:
            if _transient(exc):
                raise DependencyUnavailable("account store") from exc
            raise _Stale from exc  # an ETag went stale (the account or `meta`): read again

    def unlink(
        self,
        owner: str,
        account_id: str,
        events: Sequence[Event] = (),
        *,
        version: int | None = None,
    ) -> Account | None:
        pk = partition_of(owner)

        def attempt() -> Account | None:
            entity = self._get(pk, _ACCOUNT + account_id)
            if entity is None:
                return None
            account = account_from_row(join_report(_row(entity)))
            if version is not None and account.version != version:
                raise VersionMismatch(account_id)
            index_rk = _INDEX + account_sort_key(account.created_at, account.id)
            index = self._get(pk, index_rk)  # a first-release account may have none yet
            meta = self._ensure_meta(pk)
            operations: list[Any] = [
                ("delete", {"PartitionKey": pk, "RowKey": _ACCOUNT + account_id},
                 {"etag": entity.metadata["etag"],
                  "match_condition": MatchConditions.IfNotModified}),
                ("delete", {"PartitionKey": pk,
                            "RowKey": f"{_PAIR}{account.tenant_id}_{account.application_id}"}),
            ]  # fmt: skip
            operations += self._key_operations(pk, account, KeyChanges(release=account.key_ids()))
            if index is not None:
                operations.append(
                    ("delete", {"PartitionKey": pk, "RowKey": index_rk},
                     {"etag": index.metadata["etag"],
                      "match_condition": MatchConditions.IfNotModified})
                )  # fmt: skip
            recorded = [replace(e, previous_status=account.status) for e in events]
            operations += _meta_operations(
                pk, meta, recorded, -1, -int(account.status == "connected")
            )
            self._submit_or_stale(operations)
            with suppress(DependencyUnavailable):  # else removed when met (see take_due)
                self._drop_set(owner, account_id)
            return account

        return self._contended(pk, attempt, account_id)

    # --- the health check's schedule ----------------------------------------------------------
    def take_due(
        self, due_by: datetime, limit: int, lease: timedelta, holder: str
    ) -> list[Account]:
        moment = int(time.time())
        until = moment + int(lease.total_seconds())
        bounds = self.policy.due_by(due_by)
        met_before: set[str] = set()
        while met := [
            e for e in self._due_entries(bounds, limit, moment) if e["RowKey"] not in met_before
        ]:
            taken = [a for e in met if (a := self._take(e, until, holder, bounds, moment))]
            if taken:
                return taken
            # Each went to another instance, was moved by a write or mended on the way: leased
            # or no longer due, none is met again, so the next read looks further (a batch
            # lost to another instance is no reason to stop).
            met_before.update(e["RowKey"] for e in met)
        return []

    def _due_entries(self, bounds: tuple[str, str], limit: int, moment: int) -> list[Any]:
        """The `limit` stalest unleased entries: the first of each ordering, merged."""
        found: dict[tuple[str, str], Any] = {}
        for prefix, bound in zip((_LAST, _RENEW), bounds, strict=True):
            entries, _ = self._one_page(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end "
                "and leaseUntil lt @now",
                {"pk": _SCHEDULE, "start": prefix, "end": f"{prefix}{bound}~", "now": moment},
                min(limit, MAX_PAGE),
            )
            for entry in entries:
                found.setdefault((str(entry["owner"]), str(entry["accountId"])), entry)
        interval = self.policy.interval
        return sorted(
            found.values(), key=lambda e: (_place_of(e).due_under(interval), e["accountId"])
        )[:limit]

    def _take(
        self, entry: Any, until: int, holder: str, bounds: tuple[str, str], moment: int
    ) -> Account | None:
        """The met entry's account, leased to `holder`. None when another instance took it
        first, when the account turns out not due (its set was behind it: mended, lease
        ended), or when it is gone (an old set is removed; a young one, a link in flight,
        keeps this lease, so it is not met again before the lease lapses)."""
        if not self._lease(entry, until, holder):
            return None
        owner, account_id = str(entry["owner"]), str(entry["accountId"])
        account = self.get_account(owner, account_id)
        if account is None:
            if moment - int(entry.get("writtenAt") or 0) > _ORPHAN_ENTRY_SECONDS:
                self._drop_set(owner, account_id)  # unlinked, or a link that failed
            return None
        place = self.policy.place(account)
        if place == _place_of(entry):
            return account
        # The account moved since its set did (a write between its two steps, or one that
        # stopped there): the set follows it, keeping the lease just taken.
        self._settle(account, place)
        last, renew = bounds
        if place.last <= last or (place.renew is not None and place.renew <= renew):
            return account
        self._release_one(owner, account_id, holder)
        return None

    def release(self, accounts: Sequence[Account], holder: str) -> None:
        for account in accounts:
            self._release_one(account.owner, account.id, holder)

    def _release_one(self, owner: str, account_id: str, holder: str) -> None:
        anchor = self._get(_SCHEDULE, _anchor_rk(partition_of(owner), account_id))
        if anchor is not None and anchor.get("leaseHolder") == holder:
            self._lease(anchor, 0, "")  # ETag-checked: a lease taken over since stays

    def _lease(self, row: Any, until: int, holder: str) -> bool:
        """Lease (`until` 0: free) the set `row` belongs to, under the ETag `row` was read
        with: False when the set changed since (another instance took it, a write moved it).
        Every change of a set writes each of its rows, so one row's ETag stands for all."""
        change = {"leaseUntil": until, "leaseHolder": holder}
        checked = {"mode": UpdateMode.MERGE, "etag": row.metadata["etag"],
                   "match_condition": MatchConditions.IfNotModified}  # fmt: skip
        operations = [
            ("update", {"PartitionKey": _SCHEDULE, "RowKey": key, **change},
             checked if key == row["RowKey"] else {"mode": UpdateMode.MERGE})
            for key in _set_keys(row)
        ]  # fmt: skip
        return self._set_change(operations)

    def _set_change(self, operations: list[Any]) -> bool:
        """Change one or more sets in one transaction; False when a row changed, went or
        already exists."""
        try:
            self._transaction(operations)
        except TableTransactionError as exc:
            if _transient(exc):
                raise DependencyUnavailable("account store") from exc
            return False
        return True

    def _settle(self, account: Account, place: Place) -> None:
        """Bring the account's set to `place` (this version's), unless it is there already or
        a newer version of the account placed it: whoever read an older account never moves
        the set back. A lease on the set stays where the set goes."""
        pk = partition_of(account.owner)
        for _ in range(_SET_TRIES):
            anchor = self._get(_SCHEDULE, _anchor_rk(pk, account.id))
            if anchor is not None:
                if _place_of(anchor) == place or int(anchor["version"]) >= account.version:
                    return  # there already, or placed by a newer version
                if self._move_set(anchor, place, account.version):
                    return
            else:
                rows = set_rows(pk, account.owner, account.id, place, account.version)
                if self._set_change([("create", row) for row in rows]):
                    return

    def _move_set(self, anchor: Any, place: Place, version: int) -> bool:
        """Move the set `anchor` (as read) heads to `place`, in one transaction under the
        anchor's ETag, its lease kept."""
        owner = str(anchor["owner"])
        lease = (int(anchor["leaseUntil"]), str(anchor.get("leaseHolder") or ""))
        rows = set_rows(partition_of(owner), owner, str(anchor["accountId"]), place, version, lease)
        keep = {row["RowKey"] for row in rows}
        checked = {"mode": UpdateMode.REPLACE, "etag": anchor.metadata["etag"],
                   "match_condition": MatchConditions.IfNotModified}  # fmt: skip
        operations: list[Any] = [
            ("update", row, checked)
            if row["RowKey"] == anchor["RowKey"]
            else ("upsert", row, {"mode": UpdateMode.REPLACE})
            for row in rows
        ]
        operations += [
            ("delete", {"PartitionKey": _SCHEDULE, "RowKey": key})
            for key in _set_keys(anchor)
            if key not in keep
        ]
        return self._set_change(operations)

    def _drop_set(self, owner: str, account_id: str) -> None:
        """Remove the account's set (unlinked, or a link that failed)."""
        for _ in range(_SET_TRIES):
            anchor = self._get(_SCHEDULE, _anchor_rk(partition_of(owner), account_id))
            if anchor is None:
                return
            checked = {"etag": anchor.metadata["etag"],
                       "match_condition": MatchConditions.IfNotModified}  # fmt: skip
            operations = [
                ("delete", {"PartitionKey": _SCHEDULE, "RowKey": key},
                 checked if key == anchor["RowKey"] else {})
                for key in _set_keys(anchor)
            ]  # fmt: skip
            if self._set_change(operations):
                return

    def claim_chore(self, name: str, now: datetime, every: timedelta) -> bool:
        if every <= timedelta(0):
            return True
        key = (_SWEEP[0], f"chore_{name}")
        row = self._get(*key)
        if row is not None and int(now.timestamp()) - int(row["lastRun"]) < every.total_seconds():
            return False
        entity = {"PartitionKey": key[0], "RowKey": key[1], "Kind": "chore",
                  "lastRun": int(now.timestamp())}  # fmt: skip
        if row is not None:  # False: another instance claimed it first
            return self._update_unchanged(entity, row, UpdateMode.REPLACE)
        try:
            self._call(lambda table: table.create_entity(entity))
        except ResourceExistsError:
            return False
        return True

    # --- the schedule's sweep ------------------------------------------------------------------
    def prepare_schedule(self, stop_at: float) -> None:
        """Sets for the accounts of an earlier release (which had none, or one entry each by
        an interval-bound due time): a first pass of the sweep over every account, then those
        old entries removed. Bounded by `stop_at`; later timer runs go on."""
        state = self._get(_SCHEDULE, _SWEEP_STATE)
        if state is not None and state.get("ready"):
            return
        if state is None or not state.get("migrated"):
            while time.monotonic() < stop_at:
                if not self.sweep_schedule(stop_at, 1, restart=True):
                    break
            state = self._get(_SCHEDULE, _SWEEP_STATE)
            if state is None or not state.get("migrated"):
                return
        if self._drop_legacy_entries(stop_at):
            self._update_unchanged(
                {"PartitionKey": _SCHEDULE, "RowKey": _SWEEP_STATE, "ready": True},
                state,
                UpdateMode.MERGE,
            )

    def sweep_schedule(self, stop_at: float, pages: int, *, restart: bool) -> bool:
        """Go on with the pass over every account (`restart`: begin one if none is going on),
        at most `pages` service pages and until `stop_at`. Each account whose set is missing
        gets one, each whose set is behind it has it moved: whatever interleaving of writes,
        takes and crashes left an account out of the schedule, the next pass puts it back.
        Pages are claimed one at a time under the sweep's ETag, so instances sweeping at
        once share the pass. True while the pass is not over."""
        if restart:
            state = self._get(_SCHEDULE, _SWEEP_STATE)
            if state is None or not state.get("active"):
                begin = {"PartitionKey": _SCHEDULE, "RowKey": _SWEEP_STATE, "Kind": "sweep",
                         "active": True, "continuation": ""}  # fmt: skip
                self._call(lambda table: table.upsert_entity(begin, mode=UpdateMode.MERGE))
        more = True
        for _ in range(pages):
            if time.monotonic() >= stop_at:
                break
            more = self._sweep_step()
            if not more:
                break
        return more

    def _sweep_step(self) -> bool:
        """Claim the pass's next page of accounts (its continuation moved on under the
        sweep's ETag; an instance that lost that race lets the winner mend it) and mend it.
        False when no pass is going on any more."""
        state = self._get(_SCHEDULE, _SWEEP_STATE)
        if state is None or not state.get("active"):
            return False
        token = json.loads(state["continuation"]) if state.get("continuation") else None
        page, resume = self._call(lambda table: _accounts_page(table, token))
        change = {"PartitionKey": _SCHEDULE, "RowKey": _SWEEP_STATE, "active": bool(resume),
                  "continuation": json.dumps(resume) if resume else ""}  # fmt: skip
        if not resume:
            change["migrated"] = True
        if not self._update_unchanged(change, state, UpdateMode.MERGE):
            return True  # another instance claimed this page: go on from where it left
        self._mend_page(page)
        return bool(resume)

    def _mend_page(self, entities: list[Any]) -> None:
        """Give each account of a page its set, or move its set to where it is."""
        if not entities:
            return
        keys = [_anchor_rk(e["PartitionKey"], e["RowKey"][len(_ACCOUNT) :]) for e in entities]
        anchors = {
            a["RowKey"]: a
            for a in self._query(
                "PartitionKey eq @pk and RowKey ge @start and RowKey le @end",
                pk=_SCHEDULE,
                start=min(keys),
                end=max(keys),
            )
        }
        missing: list[Account] = []
        for key, entity in zip(keys, entities, strict=True):
            account = account_from_row(join_report(_row(entity)))
            anchor, place = anchors.get(key), self.policy.place(account)
            if anchor is None:
                missing.append(account)
            elif _place_of(anchor) != place and int(anchor["version"]) < account.version:
                self._settle(account, place)
        for i in range(0, len(missing), _SETS_PER_TRANSACTION):
            batch = missing[i : i + _SETS_PER_TRANSACTION]
            operations = [
                ("create", row)
                for a in batch
                for row in set_rows(
                    partition_of(a.owner), a.owner, a.id, self.policy.place(a), a.version
                )
            ]
            if not self._set_change(operations):  # one was made meanwhile: one at a time
                for account in batch:
                    self._settle(account, self.policy.place(account))

    def _drop_legacy_entries(self, stop_at: float) -> bool:
        """Remove the second release's entries; True when none is left."""
        while time.monotonic() < stop_at:
            rows, _ = self._one_page(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                {"pk": _SCHEDULE, "start": _LEGACY_DUE, "end": _upper(_LEGACY_DUE)},
                MAX_PAGE,
            )
            if not rows:
                return True
            for i in range(0, len(rows), 100):
                keys = [r["RowKey"] for r in rows[i : i + 100]]
                if not self._set_change(
                    [("delete", {"PartitionKey": _SCHEDULE, "RowKey": k}) for k in keys]
                ):
                    for key in keys:  # one went meanwhile: one at a time
                        with suppress(ResourceNotFoundError):
                            self._delete(_SCHEDULE, key)
        return False

    def _update_unchanged(self, change: dict[str, Any], read: Any, mode: UpdateMode) -> bool:
        """Write `change` only if the row is still as `read` left it (its ETag); False when
        it changed or went meanwhile."""
        etag = read.metadata["etag"]
        try:
            self._call(
                lambda table: table.update_entity(
                    change, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    # --- history -----------------------------------------------------------------------------
    def account_history(
        self, owner: str, account_id: str, top: int, after: str | None = None
    ) -> Page[Event]:
        pk = partition_of(owner)
        prefix = f"{_HISTORY}{account_id}_"
        start = _history_rk(account_id, seq_position(after)) if after is not None else prefix
        entities, more = self._one_page(
            "PartitionKey eq @pk and RowKey gt @start and RowKey lt @end",
            {"pk": pk, "start": start, "end": _upper(prefix)},
            min(top + 1, MAX_PAGE),
        )
        shown = [event_from_row(_row(e)) for e in entities[:top]]
        last = str(shown[-1].seq) if shown else None
        return Page(shown, last if (len(entities) > top or more) else None)

    def events_after(self, owner: str, after: int | None, top: int) -> tuple[list[Event], int]:
        pk = partition_of(owner)
        meta = self._get(pk, _META)  # S first: every event up to S is committed (see above)
        last = int(meta["seq"]) if meta is not None else 0
        if after is not None and after > last:
            raise BadPosition(str(after))
        if after == last:
            return [], last
        entities, more = self._one_page(
            "PartitionKey eq @pk and RowKey gt @start and RowKey le @end",
            {"pk": pk, "start": _event_rk(after or 0), "end": _event_rk(last)},
            min(top, MAX_PAGE),
        )
        events = [event_from_row(_row(e)) for e in entities]
        # Events commit with no gap and retention removes a prefix: a first event beyond
        # after + 1 (or none though some were written) means retention passed the cursor.
        oldest = events[0].seq - 1 if events else last
        if after is not None and after < oldest:
            raise FeedExpired(oldest)
        if len(events) >= top or more:
            return events, events[-1].seq if events else after or 0
        return events, last

    def expire_events(self, before: datetime, limit: int) -> int:
        """Events older than `before` (their `at`), each owner's from its oldest on up to the
        first that is not, each deleted with its history row in batches. Table Storage has no
        index on `at`, so the owners are found by a cross-partition scan: each call reads at
        most a few service pages and keeps the scan's continuation in a row of its own, so
        calls of later timer runs go on from there and every partition is reached in turn."""
        found = self._sweep_page(
            f"{_prefix_filter(_EVENT)} and at lt @before",
            {"before": to_rfc3339(before)},
            min(limit, MAX_PAGE),
        )
        removed = 0
        for pk in dict.fromkeys(entity["PartitionKey"] for entity in found):
            if removed >= limit:
                break
            removed += self._expire_prefix(pk, to_rfc3339(before), limit - removed)
        return removed

    def _expire_prefix(self, pk: str, before: str, limit: int) -> int:
        """Delete the partition's oldest events while they are older than `before`, in feed
        order (a batch at a time, oldest batch first), so what is kept has no gap behind it."""
        oldest, _ = self._one_page(
            f"PartitionKey eq @pk and {_prefix_filter(_EVENT)}", {"pk": pk}, min(limit, MAX_PAGE)
        )
        old = list(itertools.takewhile(lambda e: str(e["at"]) < before, oldest))
        for i in range(0, len(old), 50):  # 100 operations per transaction at most
            operations: list[Any] = []
            for row in old[i : i + 50]:
                operations.append(("delete", {"PartitionKey": pk, "RowKey": row["RowKey"]}))
                history = _history_rk(row["accountId"], int(row["seq"]))
                operations.append(("delete", {"PartitionKey": pk, "RowKey": history}))
            try:
                self._transaction(operations)
            except TableTransactionError as exc:
                if _transient(exc):
                    raise DependencyUnavailable("account store") from exc
                for op in operations:  # a row already gone fails the batch: one by one, in order
                    self._delete(op[1]["PartitionKey"], op[1]["RowKey"])
        return len(old)

    def ping(self) -> None:
        # One point read of a row that never exists: a 404 proves the service answered. A table
        # that is gone is reachable too; the next write creates it again.
        with self._guard():
            try:
                self._table.get_entity(*_PROBE)
            except ResourceNotFoundError:
                return


def _table_missing(error: HttpResponseError) -> bool:
    # A missing row answers ResourceNotFound; a missing table TableNotFound (Azurite's insert
    # answers a bare 404 without a code, which can only mean the table).
    return error.status_code == 404 and getattr(error, "error_code", None) != "ResourceNotFound"


def _transient(error: HttpResponseError) -> bool:
    return error.status_code is not None and (error.status_code >= 500 or error.status_code == 429)


def _key_merge(pk: str, entity: Any, **changes: Any) -> Any:
    """A MERGE of a key record under the ETag it was read with."""
    return ("update", {"PartitionKey": pk, "RowKey": entity["RowKey"], **changes},
            {"mode": UpdateMode.MERGE, "etag": entity.metadata["etag"],
             "match_condition": MatchConditions.IfNotModified})  # fmt: skip


def _meta_operations(
    pk: str, meta: Any, events: Sequence[Event], linked: int, connected: int
) -> list[Any]:
    """The owner's `meta` row moved on under its ETag, and the events' rows, for a transaction.

    The ETag check is what orders events: see the module's docstring."""
    change: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": _META,
        "linked": int(meta.get("linked") or 0) + linked,
        "connected": int(meta.get("connected") or 0) + connected,
    }
    operations: list[Any] = []
    seq = int(meta.get("seq") or 0)
    for event in events:
        seq += 1
        change["seq"] = seq
        row = {**event_to_row(event), "seq": seq}
        operations += [
            ("create", {"PartitionKey": pk, "RowKey": _event_rk(seq), "Kind": "event", **row}),
            ("create", {"PartitionKey": pk, "RowKey": _history_rk(event.account_id, seq),
                        "Kind": "history", **row}),
        ]  # fmt: skip
    update = ("update", change, {"mode": UpdateMode.MERGE, "etag": meta.metadata["etag"],
                                 "match_condition": MatchConditions.IfNotModified})  # fmt: skip
    return [update, *operations]


class _Stale(Exception):
    """An ETag went stale between read and write."""
