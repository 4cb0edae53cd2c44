"""The app's parts, as one process holds them: settings, the key stores, the account store, the
caller's authenticator, the outbound session, the tenant client and the issuer key ring.

`shared.app.bootstrap` (the composition root) builds it and injects the factories of what is made
on first use (the key store of another custody, the tenant client, the issuer), so nothing here
names a concrete backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.keystore.base import KeyStore, PrivateKeyMissing
from shared.core.errors import ConfigurationError
from shared.core.settings import Settings

if TYPE_CHECKING:
    import requests
    from cryptography.hazmat.primitives.asymmetric import rsa

    from shared.adapters.identity.base import Authenticator
    from shared.adapters.issuer import IssuerKeyring
    from shared.adapters.tenant.client import TenantClient
    from shared.core.model import KeyRecord


@dataclass
class AppContext:
    settings: Settings
    keys: KeyStore  # where new keys are made: the store of KEY_CUSTODY
    accounts: AccountStore
    authenticator: Authenticator
    http: requests.Session
    make_store: Callable[[str], KeyStore] | None = None  # the store of another custody
    make_tenant_client: Callable[[requests.Session], TenantClient] | None = None
    make_issuer: Callable[[AppContext], IssuerKeyring] | None = None
    _tenant: TenantClient | None = None
    _issuer: IssuerKeyring | None = None
    _stores: dict[str, KeyStore] = field(default_factory=dict)

    def custody_of(self, record: KeyRecord) -> str:
        """A key's custody; records of the first release name none: theirs was a Key Vault
        secret when a vault was set, else a local file."""
        if record.custody:
            return record.custody
        return "vault-secret" if self.settings.key_vault_url else "local"

    def key_store(self, custody: str) -> KeyStore:
        """The store of a custody, made on first use; keys of several custodies work side by
        side, each signing and deleted where it lives."""
        if custody == self.keys.custody:
            return self.keys
        if custody not in self.settings.custodies or self.make_store is None:
            raise ConfigurationError(
                f"a key of custody {custody} cannot be reached with these settings: keep "
                "KEY_VAULT_URL set while keys made in the vault exist"
            )
        with _stores_lock:
            if custody not in self._stores:
                self._stores[custody] = self.make_store(custody)
            return self._stores[custody]

    def key_store_of(self, record: KeyRecord) -> KeyStore:
        return self.key_store(self.custody_of(record))

    def signer_of_key(self, owner: str, key_id: str) -> rsa.RSAPrivateKey:
        """A sign-only key object for the owner's key, from the store of its custody."""
        record = self.accounts.get_key(owner, key_id)
        if record is None:
            raise PrivateKeyMissing(key_id)
        return self.key_store_of(record).signer(key_id)

    def key_stores(self) -> list[KeyStore]:
        """Every store this app can reach (housekeeping sweeps each)."""
        return [self.key_store(c) for c in self.settings.custodies]

    def forget_account(self, account_id: str) -> None:
        """An unlinked account's cached sign-in state goes with it (nothing to do if none)."""
        if self._tenant is not None:
            self._tenant.forget_account(account_id)

    def tenant_client(self) -> TenantClient:
        """The client of customers' tenants, made on first use by the factory the composition
        root gave (it imports MSAL then)."""
        if self._tenant is None:
            if self.make_tenant_client is None:
                raise ConfigurationError("this context was built without a tenant client")
            self._tenant = self.make_tenant_client(self.http)
        return self._tenant

    def issuer(self) -> IssuerKeyring:
        """The issuer key ring, made on first use by the factory the composition root gave:
        one per process, so its cache of the published keys serves every request."""
        if self._issuer is None:
            if self.make_issuer is None:
                raise ConfigurationError("this context was built without an issuer")
            with _stores_lock:
                if self._issuer is None:
                    self._issuer = self.make_issuer(self)
        return self._issuer


_stores_lock = threading.Lock()
