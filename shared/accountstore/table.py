"""The account store on Azure Table Storage (Azurite in tests).

One partition per owner, so every rule that must hold atomically is an entity-group transaction
inside it: creating the account, its tenant + application uniqueness row ("pair") and binding the
key happen together or not at all. Updates carry the ETag they read (optimistic concurrency).

A table deleted under the running app (an operator, a storage account made again) is created
again on the first call that finds it gone, and that call runs once more; a table Azure is still
deleting answers 503 until it can be made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar
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

from shared.accountstore.base import (
    AccountStore,
    KeyTaken,
    PairTaken,
    VersionConflict,
    newest_first,
    store_identity,
)
from shared.accountstore.codec import (
    account_from_row,
    account_to_row,
    join_report,
    key_from_row,
    key_to_row,
    split_report,
)
from shared.azure_pipeline import client_options
from shared.errors import DependencyUnavailable
from shared.records import Account, KeyRecord
from shared.settings import TableSettings

T = TypeVar("T")
# Bounded retries and timeouts: a storage outage must become a prompt 503, not a hung request.
_CLIENT_OPTIONS: dict[str, Any] = client_options()
_KEY, _ACCOUNT, _PAIR = "key_", "acct_", "pair_"
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

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
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
                    self._service.create_table_if_not_exists(self._table_name)
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
    def link(self, account: Account) -> None:
        pk = partition_of(account.owner)
        pair_rk = f"{_PAIR}{account.tenant_id}_{account.application_id}"
        key_entity = self._get(pk, _KEY + account.key_id)
        if key_entity is None or key_entity.get("deleting") or key_entity.get("accountId"):
            self._refuse(pk, pair_rk, key_entity)
        operations: list[Any] = [
            ("create", {"PartitionKey": pk, "RowKey": _ACCOUNT + account.id, "Kind": "account",
                        **split_report(account_to_row(account))}),
            ("create", {"PartitionKey": pk, "RowKey": pair_rk, "Kind": "pair",
                        "accountId": account.id}),
            ("update", {"PartitionKey": pk, "RowKey": _KEY + account.key_id,
                        "accountId": account.id},
             {"mode": UpdateMode.MERGE, "etag": key_entity.metadata["etag"],
              "match_condition": MatchConditions.IfNotModified}),
        ]  # fmt: skip
        try:
            self._call(lambda table: table.submit_transaction(operations))
        except TableTransactionError as exc:
            if _transient(exc):
                raise DependencyUnavailable("account store") from exc
            # Another link came first: say which rule it broke.
            self._refuse(pk, pair_rk, self._get(pk, _KEY + account.key_id))

    def _refuse(self, pk: str, pair_rk: str, key_entity: Any | None) -> NoReturn:
        pair = self._get(pk, pair_rk)
        if pair is not None:
            raise PairTaken(pair["accountId"])
        raise KeyTaken((key_entity or {}).get("accountId") or None)

    def get_account(self, owner: str, account_id: str) -> Account | None:
        entity = self._get(partition_of(owner), _ACCOUNT + account_id)
        return account_from_row(join_report(_row(entity))) if entity else None

    def list_accounts(self, owner: str) -> list[Account]:
        entities = self._query(
            f"PartitionKey eq @pk and {_prefix_filter(_ACCOUNT)}", pk=partition_of(owner)
        )
        return newest_first([account_from_row(join_report(_row(e))) for e in entities])

    def list_all_accounts(self) -> Iterator[Account]:
        return (
            account_from_row(join_report(_row(e))) for e in self._query(_prefix_filter(_ACCOUNT))
        )

    def update_account(self, account: Account) -> Account:
        pk, rk = partition_of(account.owner), _ACCOUNT + account.id
        current = self._get(pk, rk)
        if current is None:
            raise LookupError(account.id)
        if int(current["version"]) != account.version:
            raise VersionConflict(account.id)
        new = account.updated(version=account.version + 1)
        # REPLACE, not MERGE: a shorter report must not leave an older report's parts behind.
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "Kind": "account",
            **split_report(account_to_row(new)),
        }
        etag = current.metadata["etag"]
        try:
            self._call(
                lambda table: table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            )
        except ResourceModifiedError as exc:
            raise VersionConflict(account.id) from exc
        except ResourceNotFoundError as exc:
            raise LookupError(account.id) from exc  # unlinked since it was read
        return new

    def unlink(self, owner: str, account_id: str) -> Account | None:
        pk = partition_of(owner)

        def attempt() -> Account | None:
            entity = self._get(pk, _ACCOUNT + account_id)
            if entity is None:
                return None
            account = account_from_row(join_report(_row(entity)))
            key_entity = self._get(pk, _KEY + account.key_id)
            operations: list[Any] = [
                ("delete", {"PartitionKey": pk, "RowKey": _ACCOUNT + account_id},
                 {"etag": entity.metadata["etag"],
                  "match_condition": MatchConditions.IfNotModified}),
                ("delete", {"PartitionKey": pk,
                            "RowKey": f"{_PAIR}{account.tenant_id}_{account.application_id}"}),
            ]  # fmt: skip
            if key_entity is not None:
                operations.append(
                    ("update", {"PartitionKey": pk, "RowKey": _KEY + account.key_id,
                                "deleting": True},
                     {"mode": UpdateMode.MERGE, "etag": key_entity.metadata["etag"],
                      "match_condition": MatchConditions.IfNotModified})
                )  # fmt: skip
            try:
                self._call(lambda table: table.submit_transaction(operations))
            except TableTransactionError as exc:
                if _transient(exc):
                    raise DependencyUnavailable("account store") from exc
                raise _Stale from exc
            return account

        return self._retrying(attempt, account_id)

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


class _Stale(Exception):
    """An ETag went stale between read and write."""
