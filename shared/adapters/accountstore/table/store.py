"""The account store on Azure Table Storage (Azurite in tests), made of its parts: keys,
accounts, the health check's schedule and its sweep, events and the issuer key's records, over
one table client."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from shared.adapters.accountstore.base import store_identity
from shared.adapters.accountstore.table.accounts import TableAccounts
from shared.adapters.accountstore.table.client import CLIENT_OPTIONS
from shared.adapters.accountstore.table.issuer import TableIssuerKeys
from shared.adapters.accountstore.table.sweep import TableSweep
from shared.core.schedule import DEFAULT_POLICY, SchedulePolicy
from shared.core.settings import TableSettings

# The health probe's point read: no row has this RowKey, so it answers 404 (reachable) at once.
_PROBE = ("health", "probe")


def build_service(settings: TableSettings) -> TableServiceClient:
    if settings.connection_string:
        return TableServiceClient.from_connection_string(
            settings.connection_string, **CLIENT_OPTIONS
        )
    from azure.identity import DefaultAzureCredential  # only identity-based deployments pay for it

    assert settings.table_service_uri
    credential = DefaultAzureCredential(
        managed_identity_client_id=settings.managed_identity_client_id
    )
    return TableServiceClient(
        endpoint=settings.table_service_uri, credential=credential, **CLIENT_OPTIONS
    )


class TableAccountStore(TableAccounts, TableSweep, TableIssuerKeys):
    backend = "table"

    def __init__(
        self,
        service: TableServiceClient,
        table_name: str,
        policy: SchedulePolicy = DEFAULT_POLICY,
    ) -> None:
        super().__init__(service, table_name)
        self.policy = policy
        self.identity = store_identity(self.backend, f"{service.account_name}/{table_name}")

    def ping(self) -> None:
        # One point read of a row that never exists: a 404 proves the service answered. A table
        # that is gone is reachable too; the next write creates it again.
        with self._guard():
            try:
                self._table.get_entity(*_PROBE)
            except ResourceNotFoundError:
                return
