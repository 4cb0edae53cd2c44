"""The Table store's issuer key records: one `issuerkey_<generation>` row each in the app's own
`%issuer` partition. A claim is an insert (the service refuses a second one of a generation);
every other change is under the ETag read, which is the record's version."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.accountstore.base import VersionConflict
from shared.adapters.accountstore.table.client import TableRows
from shared.adapters.accountstore.table.layout import ISSUER, ISSUER_KEY, prefix_filter, row_of
from shared.core.issuer_keys import IssuerKey, from_row, to_row


def _row_key(generation: int) -> str:
    return f"{ISSUER_KEY}{generation:010d}"


def _entity(record: IssuerKey) -> dict[str, Any]:
    return {
        "PartitionKey": ISSUER,
        "RowKey": _row_key(record.generation),
        "Kind": "issuer_key",
        **to_row(record),
    }


def _record(entity: Any) -> IssuerKey:
    return from_row(row_of(entity), entity.metadata["etag"])


class TableIssuerKeys(TableRows):
    def issuer_keys(self) -> list[IssuerKey]:
        rows = self._query(f"PartitionKey eq @pk and {prefix_filter(ISSUER_KEY)}", pk=ISSUER)
        return sorted((_record(e) for e in rows), key=lambda r: r.generation)

    def claim_issuer_key(self, record: IssuerKey) -> IssuerKey | None:
        entity = _entity(record)
        try:
            answer = self._call(lambda table: table.create_entity(entity))
        except ResourceExistsError:
            # azure-core retries an insert answered 5xx; if the first one landed, the retry
            # meets it: the same key id is this claim's own.
            found = self._get(ISSUER, entity["RowKey"])
            return _record(found) if found and found.get("keyId") == record.key_id else None
        return _with_version(record, answer)

    def update_issuer_key(self, record: IssuerKey) -> IssuerKey:
        # The ETag alone guards it: a row removed and claimed again has another.
        try:
            answer = self._call(
                lambda table: table.update_entity(
                    _entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.version,
                    match_condition=MatchConditions.IfNotModified,
                )
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise VersionConflict(f"issuer key {record.generation}") from exc
        return _with_version(record, answer)

    def delete_issuer_key(self, record: IssuerKey) -> None:
        try:
            self._call(
                lambda table: table.delete_entity(
                    ISSUER,
                    _row_key(record.generation),
                    etag=record.version,
                    match_condition=MatchConditions.IfNotModified,
                )
            )
        except ResourceModifiedError as exc:
            raise VersionConflict(f"issuer key {record.generation}") from exc
        except ResourceNotFoundError:
            return


def _with_version(record: IssuerKey, answer: Any) -> IssuerKey:
    return replace(record, version=str(answer["etag"]))
