"""An RSA key that signs the JWTs the sandbox issues and publishes its public half as a JWK.

Why: the Entra stand-in issues access tokens that Graph must verify, and the portal issuer mints
bearer tokens that the app verifies through a JWKS. Each gets its own key, made at start-up and held
only in memory; the private half never leaves this object.
"""

from __future__ import annotations

import base64
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class SigningKey:
    """A fresh RSA-2048 key with a stable `kid`; signs and verifies RS256 JWTs."""

    def __init__(self) -> None:
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        spki = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        self.kid = base64.urlsafe_b64encode(digest.finalize()[:20]).rstrip(b"=").decode()

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._private_key.public_key()

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWT of `claims` with `typ`, `kid` (and `x5t`, as Entra sets both)."""
        headers = {"typ": "JWT", "kid": self.kid, "x5t": self.kid}
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers=headers)

    def verify(self, token: str, **options: Any) -> dict[str, Any]:
        """The claims of a token this key signed; raises `jwt.InvalidTokenError` otherwise."""
        claims: dict[str, Any] = jwt.decode(token, self.public_key, algorithms=["RS256"], **options)
        return claims

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK: `kty`, `use`, `kid`, `n`, `e`."""
        public = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": public["n"], "e": public["e"]}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk()]}

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"
