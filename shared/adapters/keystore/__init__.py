"""The key store: where private keys live. Key Vault in Azure, files locally."""

from shared.adapters.keystore.base import KeyStore, PrivateKeyMissing, StoredKey

__all__ = ["KeyStore", "PrivateKeyMissing", "StoredKey"]
