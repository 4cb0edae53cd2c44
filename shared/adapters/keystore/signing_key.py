"""A private key object that can sign and do nothing else.

Key stores hand these out instead of key material: `cryptography` (certificate signing) and
PyJWT (client assertions) need only `sign()` and `public_key()`; exporting, decrypting, copying
or pickling the key raises. A store may also translate the failures of a remote `sign()` (Key
Vault) into its own errors.

The way to sign (a key in memory's own `sign`, whose `__self__` is the private key, or a call to
Key Vault) is not kept on the object: it sits in this module's table, weakly keyed by the
object, so no attribute, closure cell or bound method reachable from a signer leads to a key.
Python cannot hide an object from code that goes looking through the interpreter's internals;
this keeps the key off every path that code, a debugger's repr or a serialiser walks by accident.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding

# (data, padding, hash) -> signature: a key in memory's own sign(), or a call to Key Vault.
Sign = Callable[[bytes, AsymmetricPadding, Any], bytes]
OnError = Callable[[Exception], Exception]

_HELD: weakref.WeakKeyDictionary[SigningOnlyKey, tuple[Sign, OnError | None]] = (
    weakref.WeakKeyDictionary()
)
_HELD_LOCK = threading.Lock()


class SigningOnlyKey(rsa.RSAPrivateKey):
    def __init__(
        self,
        sign: Sign,
        public_key: rsa.RSAPublicKey,
        *,
        on_error: OnError | None = None,
    ) -> None:
        self._public = public_key
        with _HELD_LOCK:
            _HELD[self] = (sign, on_error)

    def sign(self, data: bytes, padding: AsymmetricPadding, algorithm: Any) -> bytes:
        sign, on_error = _HELD[self]
        try:
            return sign(data, padding, algorithm)
        except Exception as exc:
            if on_error is None:
                raise
            raise on_error(exc) from exc

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
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

    # Neither copied nor pickled: a copy would need the key, and a pickle would carry it.
    def __copy__(self) -> SigningOnlyKey:
        self._refuse()

    def __deepcopy__(self, memo: dict[int, Any]) -> SigningOnlyKey:
        self._refuse()

    def __reduce__(self) -> NoReturn:
        self._refuse()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self._refuse()

    def __getstate__(self) -> NoReturn:
        self._refuse()

    def __repr__(self) -> str:
        return f"<SigningOnlyKey {self.key_size} bits>"
