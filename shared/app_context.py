"""Builds the app's parts from settings once per process and hands them to the functions.

Heavy SDKs are imported only for the backend in use, so a function stays quick to import.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests

from shared.accountstore.base import AccountStore
from shared.identity import Authenticator, EntraAuthenticator, LocalAuthenticator
from shared.keystore.base import KeyStore
from shared.outbound import make_session
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from shared.tenant_client import TenantClient


@dataclass
class AppContext:
    settings: Settings
    keys: KeyStore
    accounts: AccountStore
    authenticator: Authenticator
    http: requests.Session
    _tenant: TenantClient | None = None

    def forget_account(self, account_id: str) -> None:
        """An unlinked account's cached sign-in state goes with it (nothing to do if none)."""
        if self._tenant is not None:
            self._tenant.forget_account(account_id)

    def tenant_client(self) -> TenantClient:
        """The client of customers' tenants, made on first use (it imports MSAL)."""
        if self._tenant is None:
            from shared.tenant_client import TenantClient

            self._tenant = TenantClient(self.http)
        return self._tenant


def build_context(
    settings: Settings, *, vault_credential: TokenCredential | None = None
) -> AppContext:
    http = make_session()
    return AppContext(
        settings=settings,
        keys=_key_store(settings, vault_credential),
        accounts=_account_store(settings),
        authenticator=EntraAuthenticator(settings.auth, http)
        if settings.auth.mode == "entra"
        else LocalAuthenticator(),
        http=http,
    )


def _key_store(settings: Settings, credential: TokenCredential | None) -> KeyStore:
    if settings.key_vault_url:
        from shared.keystore.keyvault import KeyVaultKeyStore

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return KeyVaultKeyStore(settings.key_vault_url, credential)
    from shared.keystore.local import LocalKeyStore

    return LocalKeyStore(settings.local_state_dir / "keys")


def _account_store(settings: Settings) -> AccountStore:
    if settings.table:
        from shared.accountstore.table import TableAccountStore, build_service

        return TableAccountStore(build_service(settings.table), settings.table.table_name)
    from shared.accountstore.sqlite import SqliteAccountStore

    return SqliteAccountStore(settings.local_state_dir / "accounts.sqlite3")


_context: AppContext | None = None
_lock = threading.Lock()


def get_context() -> AppContext:
    """The process-wide context, built from the environment on first use."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                _context = build_context(load_settings())
    return _context


def set_context(context: AppContext | None) -> None:
    """Install a context built elsewhere (the local host at start-up, tests); None forgets it."""
    global _context
    with _lock:
        _context = context
