"""The Table store's key records: one `key_<id>` row each, in its owner's partition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.accountstore.base import KeyChanges, KeyTaken, VersionConflict
from shared.adapters.accountstore.codec import key_from_row, key_to_row
from shared.adapters.accountstore.table.client import Stale, TableRows
from shared.adapters.accountstore.table.layout import KEY, partition_of, prefix_filter, row_of
from shared.core.model import Account, KeyRecord
from shared.support.optimistic import retry_lost_races


class TableKeys(TableRows):
    def add_key(self, record: KeyRecord) -> None:
        entity = {
            "PartitionKey": partition_of(record.owner),
            "RowKey": KEY + record.key_id,
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
        entity = self._get(partition_of(owner), KEY + key_id)
        return key_from_row(row_of(entity)) if entity else None

    def delete_key(self, owner: str, key_id: str) -> None:
        self._call(lambda table: table.delete_entity(partition_of(owner), KEY + key_id))

    def list_keys(self) -> Iterator[KeyRecord]:
        return (key_from_row(row_of(e)) for e in self._query(prefix_filter(KEY)))

    def mark_unused_key_deleting(self, owner: str, key_id: str) -> bool:
        pk, rk = partition_of(owner), KEY + key_id

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
                raise Stale from exc
            except ResourceNotFoundError:
                return False
            return True

        return retry_lost_races(attempt, Stale, gave_up=lambda: VersionConflict(key_id))

    def _key_operations(self, pk: str, account: Account, keys: KeyChanges) -> list[Any]:
        """The key records' changes for the account's transaction, each under the ETag read
        here: a key bound or released meanwhile makes the whole transaction stale."""
        operations: list[Any] = []
        for key_id in keys.bind:
            entity = self._get(pk, KEY + key_id)
            if (
                entity is None
                or entity.get("deleting")
                or (entity.get("accountId") or account.id) != account.id
            ):
                raise KeyTaken((entity or {}).get("accountId") or None)
            operations.append(_key_merge(pk, entity, accountId=account.id))
        for key_id in keys.release:
            entity = self._get(pk, KEY + key_id)
            if entity is not None:
                operations.append(_key_merge(pk, entity, deleting=True))
        return operations


def _key_merge(pk: str, entity: Any, **changes: Any) -> Any:
    """A MERGE of a key record under the ETag it was read with."""
    return ("update", {"PartitionKey": pk, "RowKey": entity["RowKey"], **changes},
            {"mode": UpdateMode.MERGE, "etag": entity.metadata["etag"],
             "match_condition": MatchConditions.IfNotModified})  # fmt: skip
