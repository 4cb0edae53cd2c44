"""A private key object that can sign and do nothing else.

Key stores hand these out instead of key material: `cryptography` (certificate signing) and
PyJWT (client assertions) need only `sign()` and `public_key()`; exporting, decrypting or copying
the key raises. A store may also translate the failures of a remote `sign()` (Key Vault) into its
own errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding

# (data, padding, hash) -> signature: a key in memory's own sign(), or a call to Key Vault.
Sign = Callable[[bytes, AsymmetricPadding, Any], bytes]


class SigningOnlyKey(rsa.RSAPrivateKey):
    def __init__(
        self,
        sign: Sign,
        public_key: rsa.RSAPublicKey,
        *,
        on_error: Callable[[Exception], Exception] | None = None,
    ) -> None:
        self._sign = sign
        self._public = public_key
        self._on_error = on_error

    def sign(self, data: bytes, padding: AsymmetricPadding, algorithm: Any) -> bytes:
        try:
            return self._sign(data, padding, algorithm)
        except Exception as exc:
            if self._on_error is None:
                raise
            raise self._on_error(exc) from exc

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def _refuse(self) -> NoReturn:
        raise TypeError("this key signs only; its private material never leaves the key store")

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        self._refuse()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        self._refuse()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        self._refuse()

    def __copy__(self) -> SigningOnlyKey:
        return self  # immutable; a copy would be the same key

    def __deepcopy__(self, memo: dict[int, Any]) -> SigningOnlyKey:
        return self

    def __repr__(self) -> str:
        return f"<SigningOnlyKey {self.key_size} bits>"
