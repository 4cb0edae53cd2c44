"""The Table store's client, which every part of the store (keys, accounts, schedule, events)
calls through: one SDK call at a time, its failures mapped, the table made again when gone, and
the owner's turn for writes that race on the owner's `meta` row.

A table deleted under the running app (an operator, a storage account made again) is created
again on the first call that finds it gone, and that call runs once more; a table Azure is still
deleting answers 503 until it can be made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared.adapters.accountstore.base import AccountStore, VersionConflict
from shared.adapters.accountstore.table.layout import MAX_PAGE, NEW_SWEEP
from shared.adapters.http.azure_pipeline import client_options
from shared.core.errors import DependencyUnavailable
from shared.support.optimistic import retry_lost_races
from shared.support.striped import StripedLocks

T = TypeVar("T")
# Bounded retries and timeouts: a storage outage must become a prompt 503, not a hung request.
CLIENT_OPTIONS: dict[str, Any] = client_options()


class Stale(Exception):
    """An ETag went stale between read and write: the writer lost a race, and reads again."""


def transient(error: HttpResponseError) -> bool:
    return error.status_code is not None and (error.status_code >= 500 or error.status_code == 429)


def _table_missing(error: HttpResponseError) -> bool:
    # A missing row answers ResourceNotFound; a missing table TableNotFound (Azurite's insert
    # answers a bare 404 without a code, which can only mean the table).
    return error.status_code == 404 and getattr(error, "error_code", None) != "ResourceNotFound"


class TableRows(AccountStore):
    """What the parts of the Table store share: the table client and the calls through it.
    Each part implements its share of the interface; `store.TableAccountStore` composes them."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        # A TableClient of its own rather than service.get_table_client(): the latter wraps the
        # transport so that retry sleeps bypass the deadline-aware transport (azure_pipeline).
        self._table: TableClient = TableClient(
            endpoint=service.url,
            table_name=table_name,
            credential=service.credential,
            **CLIENT_OPTIONS,
        )
        self._table_name = table_name
        self._ready = False
        self._lock = threading.Lock()
        self._turns = StripedLocks()  # writers of one owner take turns (see _contended)

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
            if exc.status_code is None or transient(exc):
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
                        self._table.upsert_entity(NEW_SWEEP, mode=UpdateMode.REPLACE)
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

    def _submit_or_stale(self, operations: list[Any]) -> None:
        try:
            self._call(lambda table: table.submit_transaction(operations))
        except TableTransactionError as exc:
            if transient(exc):
                raise DependencyUnavailable("account store") from exc
            raise Stale from exc  # an ETag went stale (the account or `meta`): read again

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
                table.query_entities(filter_, parameters=params, results_per_page=MAX_PAGE)
            )
        )

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

    def _contended(self, pk: str, attempt: Callable[[], T], name: str) -> T:
        """`attempt` (a read-decide-write that raises Stale when it lost its race) for writes
        that take a turn on the owner's `meta` row: the one optimistic-write loop, writers of
        one process taking turns on the owner's lock, so only other instances make them lose
        (the ETag check, not the lock, is what keeps events in order). VersionConflict (a 503)
        when every try lost."""
        return retry_lost_races(
            attempt, Stale, gave_up=lambda: VersionConflict(name), turn=self._turns.of(pk)
        )
