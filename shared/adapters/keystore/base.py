"""The key store's interface, built around signing: a store makes a key, signs with it, deletes
it. It never hands a private key out: `signer()` returns a key object that can sign and nothing
more, whatever the custody (in Key Vault the signature itself is made by the vault).

Custodies: `vault-key` (a non-exportable Key Vault key; Key Vault signs), `vault-secret` (made
in the app, kept as a Key Vault secret, read to sign), `local` (files, for `make run` and tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.support.guid import is_canonical_guid

CUSTODIES = ("vault-key", "vault-secret", "local")

# Signs the new key's certificate: (signer, public key) -> certificate.
Certify = Callable[[rsa.RSAPrivateKey, rsa.RSAPublicKey], x509.Certificate]


class PrivateKeyMissing(Exception):
    """The store holds no private key under this id."""


class UnusableKey(Exception):
    """The store holds something under this id that is not an RSA private key."""


@dataclass(frozen=True)
class KeyLabels:
    """What the store records beside a private key, so an operator can tell what it is."""

    owner: str
    tenant_id: str
    application_id: str
    thumbprint: str  # "" when the store records the key before its certificate exists
    not_after: datetime
    # The account store whose record points at this key (AccountStore.identity): the orphan
    # sweep removes only keys of its own store, never another environment's sharing the vault.
    store: str = ""


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    created_at: datetime | None
    store: str | None = None  # the `store` label it was put with; None when it has none


def check_key_id(key_id: str) -> str:
    """Key ids are lower-case UUIDs; anything else never reaches a file name or a vault URL."""
    if not is_canonical_guid(key_id):
        raise ValueError("key id must be a lower-case UUID")
    return key_id


class KeyStore(ABC):
    custody: str
    backend: str  # what the health route names: `local` or `keyvault`

    @abstractmethod
    def create(
        self, key_id: str, labels: KeyLabels, *, key_size: int, certify: Certify
    ) -> x509.Certificate:
        """Make a new RSA key, have `certify` sign its certificate with it, and keep the key.

        On failure nothing usable stays behind (what cannot be removed at once is an orphan the
        housekeeping removes). Raises DependencyUnavailable when the store is down.
        """

    @abstractmethod
    def signer(self, key_id: str) -> rsa.RSAPrivateKey:
        """A sign-only key object. Raises PrivateKeyMissing, UnusableKey or
        DependencyUnavailable (now, or when it signs)."""

    @abstractmethod
    def delete(self, key_id: str) -> None:
        """Delete the private key; a key already gone is not an error."""

    @abstractmethod
    def list(self) -> Iterator[StoredKey]:
        """Every key the store holds (housekeeping finds keys left without a record); a key
        deleted while the list is made may or may not be in it, and never stops it."""

    @abstractmethod
    def ping(self) -> None:
        """Raise DependencyUnavailable when the store cannot be reached."""
