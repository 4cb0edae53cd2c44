"""The Table store's accounts: linked, listed, counted, updated and unlinked, each change in one
entity-group transaction of the owner's partition with its pair row, its key records, its index
row and its events, under the ETags read (optimistic concurrency); the account's schedule set
follows it in a step of its own.

First-release partitions have no `acctidx_` rows: the first list backfills them, each in a
transaction with an ETag check of its account.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from shared.adapters.accountstore.base import (
    NO_KEY_CHANGES,
    KeyChanges,
    KeyTaken,
    Page,
    PairTaken,
    VersionConflict,
    VersionMismatch,
    account_position,
)
from shared.adapters.accountstore.codec import (
    account_from_row,
    account_sort_key,
    account_to_row,
    join_report,
    split_report,
)
from shared.adapters.accountstore.table.client import Stale, transient
from shared.adapters.accountstore.table.events import TableEvents, meta_operations
from shared.adapters.accountstore.table.keys import TableKeys
from shared.adapters.accountstore.table.layout import (
    ACCOUNT,
    INDEX,
    KEY,
    MAX_PAGE,
    META,
    PAIR,
    partition_of,
    prefix_filter,
    row_of,
    upper,
)
from shared.adapters.accountstore.table.schedule import TableSchedule, set_rows
from shared.core.errors import DependencyUnavailable
from shared.core.model import Account, Event


def index_entity(pk: str, account: Account) -> dict[str, Any]:
    """The account's `acctidx_` row: a copy of it, where the owner's list reads it."""
    return {
        "PartitionKey": pk,
        "RowKey": INDEX + account_sort_key(account.created_at, account.id),
        "Kind": "accountindex",
        **split_report(account_to_row(account)),
    }


class TableAccounts(TableKeys, TableEvents, TableSchedule):
    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        super().__init__(service, table_name)
        self._indexed: set[str] = set()  # partitions known to have their index rows

    def link(self, account: Account, events: Sequence[Event] = ()) -> None:
        pk = partition_of(account.owner)
        pair_rk = f"{PAIR}{account.tenant_id}_{account.application_id}"
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
            key_entity = self._get(pk, KEY + account.key_id)
            if key_entity is None or key_entity.get("deleting") or key_entity.get("accountId"):
                raise self._broken_rule(pk, pair_rk, key_entity)
            meta = self._ensure_meta(pk)
            operations: list[Any] = [
                ("create", {"PartitionKey": pk, "RowKey": ACCOUNT + account.id, "Kind": "account",
                            **split_report(account_to_row(account))}),
                ("create", {"PartitionKey": pk, "RowKey": pair_rk, "Kind": "pair",
                            "accountId": account.id}),
                ("update", {"PartitionKey": pk, "RowKey": KEY + account.key_id,
                            "accountId": account.id},
                 {"mode": UpdateMode.MERGE, "etag": key_entity.metadata["etag"],
                  "match_condition": MatchConditions.IfNotModified}),
                ("create", index_entity(pk, account)),
                *meta_operations(pk, meta, events, 1, account.status == "connected"),
            ]  # fmt: skip
            try:
                self._call(lambda table: table.submit_transaction(operations))
            except TableTransactionError as exc:
                if transient(exc):
                    raise DependencyUnavailable("account store") from exc
                # Another link came first (say which rule it broke), or `meta` moved on.
                key_now = self._get(pk, KEY + account.key_id)
                pair = self._get(pk, pair_rk)
                if (
                    pair is not None
                    or key_now is None
                    or key_now.get("deleting")
                    or (key_now.get("accountId"))
                ):
                    raise self._broken_rule(pk, pair_rk, key_now) from exc
                raise Stale from exc

        self._contended(pk, attempt, account.id)

    def _broken_rule(self, pk: str, pair_rk: str, key_entity: Any | None) -> Exception:
        pair = self._get(pk, pair_rk)
        if pair is not None:
            return PairTaken(pair["accountId"])
        return KeyTaken((key_entity or {}).get("accountId") or None)

    def _ensure_indexed(self, pk: str) -> None:
        """Give a first-release partition its `acctidx_` rows, once."""
        if pk in self._indexed:
            return
        meta = self._ensure_meta(pk, reading=True)
        if meta is None:
            return  # nothing to index; a first write makes `meta`
        if not meta.get("indexed"):
            for entity in self._query(f"PartitionKey eq @pk and {prefix_filter(ACCOUNT)}", pk=pk):
                account = account_from_row(join_report(row_of(entity)))
                operations: list[Any] = [
                    # The ETag check ties the copy to this very version of the account; an
                    # account changed since was copied by the writer that changed it.
                    ("update", {"PartitionKey": pk, "RowKey": entity["RowKey"]},
                     {"mode": UpdateMode.MERGE, "etag": entity.metadata["etag"],
                      "match_condition": MatchConditions.IfNotModified}),
                    ("upsert", index_entity(pk, account), {"mode": UpdateMode.REPLACE}),
                ]  # fmt: skip
                try:
                    self._transaction(operations)
                except TableTransactionError as exc:
                    if transient(exc):
                        raise DependencyUnavailable("account store") from exc
            change = {"PartitionKey": pk, "RowKey": META, "indexed": True}
            self._call(lambda table: table.update_entity(change, mode=UpdateMode.MERGE))
        with self._lock:
            self._indexed.add(pk)

    def get_account(self, owner: str, account_id: str) -> Account | None:
        entity = self._get(partition_of(owner), ACCOUNT + account_id)
        return account_from_row(join_report(row_of(entity))) if entity else None

    def page_accounts(
        self, owner: str, top: int, after: str | None = None, status: str | None = None
    ) -> Page[Account]:
        pk = partition_of(owner)
        start = INDEX + account_position(after) if after is not None else INDEX
        self._ensure_indexed(pk)
        filter_ = "PartitionKey eq @pk and RowKey gt @start and RowKey lt @end"
        params: dict[str, Any] = {"pk": pk, "start": start, "end": upper(INDEX)}
        if status:
            filter_ += " and status eq @status"
            params["status"] = status
        entities, more = self._one_page(filter_, params, min(top + 1, MAX_PAGE))
        shown = entities[:top]
        accounts = [account_from_row(join_report(row_of(e))) for e in shown]
        last = shown[-1]["RowKey"][len(INDEX) :] if shown else None
        return Page(accounts, last if (len(entities) > top or more) and last else None)

    def count_accounts(self, owner: str) -> tuple[int, int]:
        meta = self._ensure_meta(partition_of(owner), reading=True) or {}
        return int(meta.get("linked") or 0), int(meta.get("connected") or 0)

    def list_all_accounts(self) -> Iterator[Account]:
        return (
            account_from_row(join_report(row_of(e))) for e in self._query(prefix_filter(ACCOUNT))
        )

    def update_account(
        self,
        account: Account,
        events: Sequence[Event] = (),
        keys: KeyChanges = NO_KEY_CHANGES,
    ) -> Account:
        pk, rk = partition_of(account.owner), ACCOUNT + account.id
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
                ("upsert", index_entity(pk, new), {"mode": UpdateMode.REPLACE}),
                *self._key_operations(pk, account, keys),
            ]  # fmt: skip
            was_connected = current.get("status") == "connected"
            now_connected = new.status == "connected"
            if events or was_connected != now_connected:
                meta = self._ensure_meta(pk)
                operations += meta_operations(
                    pk, meta, events, 0, int(now_connected) - int(was_connected)
                )
            self._submit_or_stale(operations)
            before = self.policy.place(account_from_row(join_report(row_of(current))))
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
            entity = self._get(pk, ACCOUNT + account_id)
            if entity is None:
                return None
            account = account_from_row(join_report(row_of(entity)))
            if version is not None and account.version != version:
                raise VersionMismatch(account_id)
            index_rk = INDEX + account_sort_key(account.created_at, account.id)
            index = self._get(pk, index_rk)  # a first-release account may have none yet
            meta = self._ensure_meta(pk)
            operations: list[Any] = [
                ("delete", {"PartitionKey": pk, "RowKey": ACCOUNT + account_id},
                 {"etag": entity.metadata["etag"],
                  "match_condition": MatchConditions.IfNotModified}),
                ("delete", {"PartitionKey": pk,
                            "RowKey": f"{PAIR}{account.tenant_id}_{account.application_id}"}),
            ]  # fmt: skip
            operations += self._key_operations(pk, account, KeyChanges(release=account.key_ids()))
            if index is not None:
                operations.append(
                    ("delete", {"PartitionKey": pk, "RowKey": index_rk},
                     {"etag": index.metadata["etag"],
                      "match_condition": MatchConditions.IfNotModified})
                )  # fmt: skip
            recorded = [replace(e, previous_status=account.status) for e in events]
            operations += meta_operations(
                pk, meta, recorded, -1, -int(account.status == "connected")
            )
            self._submit_or_stale(operations)
            with suppress(DependencyUnavailable):  # else removed when met (see take_due)
                self._drop_set(owner, account_id)
            return account

        return self._contended(pk, attempt, account_id)
