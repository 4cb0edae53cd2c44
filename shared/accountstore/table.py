"""The account store on Azure Table Storage (Azurite in tests).

One partition per owner, so every rule that must hold atomically is an entity-group transaction
inside it: creating the account, its tenant + application uniqueness row ("pair") and binding the
key happen together or not at all. Updates carry the ETag they read (optimistic concurrency).
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
)
from shared.accountstore.codec import account_from_row, account_to_row, key_from_row, key_to_row
from shared.errors import DependencyUnavailable
from shared.records import Account, KeyRecord
from shared.settings import TableSettings

T = TypeVar("T")
# Bounded retries and timeouts: a storage outage must become a prompt 503, not a hung request.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.3,
    "retry_backoff_max": 2,
    "connection_timeout": 5,
    "read_timeout": 15,
}
_KEY, _ACCOUNT, _PAIR = "key_", "acct_", "pair_"
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
        self._table: TableClient = service.get_table_client(table_name)
        self._table_name = table_name
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

    def _get(self, pk: str, rk: str) -> Any | None:
        with self._guard():
            try:
                return self._client().get_entity(pk, rk)
            except ResourceNotFoundError:
                return None

    def _query(self, filter_: str, **params: Any) -> list[Any]:
        with self._guard():
            return list(
                self._client().query_entities(filter_, parameters=params, results_per_page=1000)
            )

    def _retrying(self, attempt: Callable[[], T], tries: int = 5) -> T:
        """Re-run a read-check-write whose ETag went stale under a concurrent writer."""
        for _ in range(tries - 1):
            try:
                return attempt()
            except _Stale:
                continue
        try:
            return attempt()
        except _Stale as exc:
            raise VersionConflict("too much contention") from exc

    # --- keys --------------------------------------------------------------------------------
    def add_key(self, record: KeyRecord) -> None:
        entity = {
            "PartitionKey": partition_of(record.owner),
            "RowKey": _KEY + record.key_id,
            "Kind": "key",
            **key_to_row(record),
        }
        with self._guard():
            self._client().create_entity(entity)

    def get_key(self, owner: str, key_id: str) -> KeyRecord | None:
        entity = self._get(partition_of(owner), _KEY + key_id)
        return key_from_row(_row(entity)) if entity else None

    def delete_key(self, owner: str, key_id: str) -> None:
        with self._guard():
            self._client().delete_entity(partition_of(owner), _KEY + key_id)

    def list_keys(self) -> Iterator[KeyRecord]:
        return (key_from_row(_row(e)) for e in self._query(_prefix_filter(_KEY)))

    # --- accounts ----------------------------------------------------------------------------
    def link(self, account: Account) -> None:
        pk = partition_of(account.owner)
        pair_rk = f"{_PAIR}{account.tenant_id}_{account.application_id}"
        key_entity = self._get(pk, _KEY + account.key_id)
        if key_entity is None or key_entity.get("deleting") or key_entity.get("accountId"):
            self._refuse(pk, pair_rk, key_entity)
        operations: list[Any] = [
            ("create", {"PartitionKey": pk, "RowKey": _ACCOUNT + account.id, "Kind": "account",
                        **account_to_row(account)}),
            ("create", {"PartitionKey": pk, "RowKey": pair_rk, "Kind": "pair",
                        "accountId": account.id}),
            ("update", {"PartitionKey": pk, "RowKey": _KEY + account.key_id,
                        "accountId": account.id},
             {"mode": UpdateMode.MERGE, "etag": key_entity.metadata["etag"],
              "match_condition": MatchConditions.IfNotModified}),
        ]  # fmt: skip
        try:
            with self._guard():
                self._client().submit_transaction(operations)
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
        return account_from_row(_row(entity)) if entity else None

    def list_accounts(self, owner: str) -> list[Account]:
        entities = self._query(
            f"PartitionKey eq @pk and {_prefix_filter(_ACCOUNT)}", pk=partition_of(owner)
        )
        return newest_first([account_from_row(_row(e)) for e in entities])

    def list_all_accounts(self) -> Iterator[Account]:
        return (account_from_row(_row(e)) for e in self._query(_prefix_filter(_ACCOUNT)))

    def update_account(self, account: Account) -> Account:
        pk, rk = partition_of(account.owner), _ACCOUNT + account.id
        current = self._get(pk, rk)
        if current is None:
            raise LookupError(account.id)
        if int(current["version"]) != account.version:
            raise VersionConflict(account.id)
        new = account.updated(version=account.version + 1)
        entity = {"PartitionKey": pk, "RowKey": rk, "Kind": "account", **account_to_row(new)}
        try:
            with self._guard():
                self._client().update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise VersionConflict(account.id) from exc
        return new

    def unlink(self, owner: str, account_id: str) -> Account | None:
        pk = partition_of(owner)

        def attempt() -> Account | None:
            entity = self._get(pk, _ACCOUNT + account_id)
            if entity is None:
                return None
            account = account_from_row(_row(entity))
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
                with self._guard():
                    self._client().submit_transaction(operations)
            except TableTransactionError as exc:
                if _transient(exc):
                    raise DependencyUnavailable("account store") from exc
                raise _Stale from exc
            return account

        return self._retrying(attempt)

    def ping(self) -> None:
        with self._guard():
            next(iter(self._client().query_entities("RowKey eq 'ping'", results_per_page=1)), None)


def _transient(error: HttpResponseError) -> bool:
    return error.status_code is not None and (error.status_code >= 500 or error.status_code == 429)


class _Stale(Exception):
    """An ETag went stale between read and write."""
