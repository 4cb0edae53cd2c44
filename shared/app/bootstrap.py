"""The composition root: builds the app's parts from settings once per process and hands them to
the functions. Only this module names the concrete backends.

Heavy SDKs are imported only for the backend in use, so a function stays quick to import.
Settings are checked when a function module is imported (`check_settings_at_import`), so an app
that refuses its settings says so in its start-up log, and every route answers the same 500
problem naming each bad setting (never its value).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import requests

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.http.outbound import make_session
from shared.adapters.identity.entra import EntraAuthenticator
from shared.adapters.identity.local import LocalAuthenticator
from shared.adapters.issuer import IssuerKeyring
from shared.adapters.keystore.base import KeyStore
from shared.app import telemetry
from shared.context import AppContext
from shared.core.schedule import SchedulePolicy
from shared.core.settings import Settings, SettingsInvalid, load_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from cryptography.hazmat.primitives.asymmetric import rsa

    from shared.adapters.tenant.client import TenantClient

    KeyGenerator = Callable[[int], rsa.RSAPrivateKey]


def build_context(
    settings: Settings,
    *,
    vault_credential: TokenCredential | None = None,
    key_generator: KeyGenerator | None = None,
    issuer_clock: Callable[[], datetime] | None = None,
) -> AppContext:
    """The app's parts from `settings`; `issuer_clock` is the issuer key ring's clock (tests
    walk its lifecycle with one of their own)."""
    start_telemetry()
    http = make_session()

    def make_store(custody: str) -> KeyStore:
        return _key_store(settings, custody, vault_credential, key_generator)

    return AppContext(
        settings=settings,
        keys=make_store(settings.key_custody),
        accounts=_account_store(settings),
        authenticator=EntraAuthenticator(settings.auth)
        if settings.auth.mode == "entra"
        else LocalAuthenticator(),
        http=http,
        make_store=make_store,
        make_tenant_client=_tenant_client,
        make_issuer=partial(_issuer, clock=issuer_clock or _utc_now),
    )


def _issuer(ctx: AppContext, clock: Callable[[], datetime]) -> IssuerKeyring:
    """The issuer key ring: its keys in the store of KEY_CUSTODY, its records in the account
    store."""
    return IssuerKeyring(
        ctx.accounts,
        ctx.key_store,
        ctx.settings.key_custody,
        rotation=timedelta(days=ctx.settings.oidc_key_rotation_days),
        store_identity=ctx.accounts.identity,
        now=clock,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _tenant_client(http: requests.Session) -> TenantClient:
    """The client of customers' tenants; imported when first made (it imports MSAL)."""
    from shared.adapters.tenant.client import TenantClient

    return TenantClient(http)


_credential: TokenCredential | None = None  # one managed-identity credential per process


def start_telemetry() -> None:
    """Telemetry as the environment asks, once per process (before the first invocation, so
    its span is exported); Azure Monitor sends with the app's managed identity."""
    telemetry.configure(credential=lambda: _vault_credential(None))


def _vault_credential(given: TokenCredential | None) -> TokenCredential:
    global _credential
    if given is not None:
        return given
    if _credential is None:
        from azure.identity import DefaultAzureCredential

        _credential = DefaultAzureCredential()
    return _credential


def _key_store(
    settings: Settings,
    custody: str,
    credential: TokenCredential | None,
    generate: KeyGenerator | None,
) -> KeyStore:
    if custody == "vault-key":
        from shared.adapters.keystore.vault_key import KeyVaultKeyStore

        assert settings.key_vault_url
        return KeyVaultKeyStore(
            settings.key_vault_url, _vault_credential(credential), hsm=settings.key_vault_hsm
        )
    if custody == "vault-secret":
        from shared.adapters.keystore.vault_secret import KeyVaultSecretKeyStore

        assert settings.key_vault_url
        return KeyVaultSecretKeyStore(
            settings.key_vault_url, _vault_credential(credential), generate=generate
        )
    from shared.adapters.keystore.local import LocalKeyStore

    return LocalKeyStore(settings.local_state_dir / "keys", generate=generate)


def _account_store(settings: Settings) -> AccountStore:
    policy = SchedulePolicy(
        interval=timedelta(hours=settings.health_check_interval_hours),
        warning=timedelta(days=settings.cert_expiry_warning_days),
    )
    if settings.table:
        from shared.adapters.accountstore.table.store import TableAccountStore, build_service

        return TableAccountStore(build_service(settings.table), settings.table.table_name, policy)
    from shared.adapters.accountstore.sqlite.store import SqliteAccountStore

    return SqliteAccountStore(settings.local_state_dir / "accounts.sqlite3", policy)


log = logging.getLogger("m365link.settings")
_context: AppContext | None = None
_settings: Settings | None = None  # loaded at import, so the first request does not decide
_refused: SettingsInvalid | None = None
_lock = threading.Lock()


def check_settings_at_import() -> None:
    """Load and validate the settings once, when the Functions host imports a function.

    Invalid settings are logged at once (each setting named, no value) and remembered: every
    route, health included, then answers that 500 problem, and the timer run fails with it.
    Never raises, so the host still loads the functions and the problem stays visible through
    every route. A context installed beforehand (the local host, tests) is left alone."""
    global _settings, _refused
    start_telemetry()
    with _lock:
        if _context is not None or _settings is not None or _refused is not None:
            return
        try:
            _settings = load_settings()
        except SettingsInvalid as refused:
            _refused = refused
            log.error("the app refuses its settings: %s", refused.detail)


def get_context() -> AppContext:
    """The process-wide context, built on first use from the settings checked at import (or
    read now when no import check ran); raises SettingsInvalid when they were refused."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                if _refused is not None:
                    raise SettingsInvalid(_refused.problems)  # a fresh one: no traceback piles up
                _context = build_context(_settings or load_settings())
    return _context


def set_context(context: AppContext | None) -> None:
    """Install a context built elsewhere (the local host at start-up, tests); None forgets it
    and any settings read or refused at import, so the next use reads them again."""
    global _context, _settings, _refused
    with _lock:
        _context = context
        _settings = None
        _refused = None
