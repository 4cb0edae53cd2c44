"""The key store's interface. A private key goes in once, is read only to sign client
assertions, and is deleted at unlink. No route ever returns it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from shared.guid import is_canonical_guid


class PrivateKeyMissing(Exception):
    """The store holds no private key under this id."""


@dataclass(frozen=True)
class KeyLabels:
    """What the store records beside a private key, so an operator can tell what it is."""

    owner: str
    tenant_id: str
    application_id: str
    thumbprint: str
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
    backend: str

    @abstractmethod
    def put(self, key_id: str, private_key_pem: bytes, labels: KeyLabels) -> None:
        """Store a new private key. Raises DependencyUnavailable when the store is down."""

    @abstractmethod
    def get(self, key_id: str) -> bytes:
        """The private key (PKCS#8 PEM). Raises PrivateKeyMissing or DependencyUnavailable."""

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
