"""Client assertions (RFC 7523 JWTs) signed by whatever key store holds the key.

MSAL is given a callable `client_assertion` (its documented interface since 1.13; the one-argument
form receives the token endpoint since 1.37), never key material. The callable runs only when MSAL
sends a token request, so a cached token costs nothing and a new one costs one `sign` (in Key
Vault under `vault-key`).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

# Entra: "5-10 minutes after nbf at most"; 10 minutes is also what MSAL uses.
LIFETIME_SECONDS = 600


class KeyUnavailable(Exception):
    """The key could not sign; `cause` is what the key store raised (DependencyUnavailable,
    PrivateKeyMissing, UnusableKey, a configuration error)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


def x5t(thumbprint_hex: str) -> str:
    """The JOSE `x5t` header: base64url of the certificate's SHA-1 digest, unpadded."""
    return base64.urlsafe_b64encode(bytes.fromhex(thumbprint_hex)).rstrip(b"=").decode("ascii")


def sign_jwt(signer: rsa.RSAPrivateKey, claims: dict[str, Any], *, thumbprint: str) -> str:
    """`claims` as an RS256 JWT naming the signing certificate by `x5t`. PyJWT calls only
    `signer.sign()`, so a sign-only key (Key Vault signs under `vault-key`) works as well."""
    return jwt.encode(claims, signer, algorithm="RS256", headers={"x5t": x5t(thumbprint)})


def sign_assertion(
    signer: rsa.RSAPrivateKey,
    *,
    client_id: str,
    audience: str,
    thumbprint: str,
    now: float | None = None,
) -> str:
    """RS256 with `x5t` (SHA-1): the long-standing form Entra accepts everywhere (FACTS §1)."""
    issued = int(now if now is not None else time.time())
    claims = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": issued,
        "iat": issued,
        "exp": issued + LIFETIME_SECONDS,
    }
    return sign_jwt(signer, claims, thumbprint=thumbprint)


def assertion_callable(
    signer: Callable[[], rsa.RSAPrivateKey],
    *,
    client_id: str,
    thumbprint: str,
    token_endpoint: str,
) -> Callable[[dict[str, Any]], str]:
    """What MSAL calls for each token request. `signer` is asked then (not before): the key
    store is reached only when a token is really requested."""

    def make(context: dict[str, Any]) -> str:
        audience = str(context.get("token_endpoint") or token_endpoint)
        try:
            return sign_assertion(
                signer(), client_id=client_id, audience=audience, thumbprint=thumbprint
            )
        except Exception as exc:  # the store's failure, for verification to report
            raise KeyUnavailable(exc) from None

    return make
