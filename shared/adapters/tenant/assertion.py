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
    claims = assertion_claims(client_id, client_id, audience, now)
    return sign_jwt(signer, claims, thumbprint=thumbprint)


def assertion_claims(issuer: str, subject: str, audience: str, now: float | None) -> dict[str, Any]:
    """A client assertion's claims (RFC 7523): who says it, of whom, to whom; a unique `jti`;
    valid from now for LIFETIME_SECONDS."""
    issued = int(now if now is not None else time.time())
    return {
        "aud": audience,
        "iss": issuer,
        "sub": subject,
        "jti": str(uuid.uuid4()),
        "nbf": issued,
        "iat": issued,
        "exp": issued + LIFETIME_SECONDS,
    }


def federated_assertion(
    signer: rsa.RSAPrivateKey,
    *,
    kid: str,
    issuer: str,
    subject: str,
    audience: str,
    now: float | None = None,
) -> str:
    """The issuer's JWT for a federated credential (FACTS §12): RS256 naming the issuer key by
    `kid` (Entra looks it up in the issuer's JWKS; no `x5t`), `iss`/`sub`/`aud` exactly as the
    credential holds them, valid for 10 minutes."""
    claims = assertion_claims(issuer, subject, audience, now)
    return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})


def lazy_assertion(
    make: Callable[[str], str], *, token_endpoint: str
) -> Callable[[dict[str, Any]], str]:
    """What MSAL calls for each token request: `make(token endpoint)` runs then (not before),
    so a key store is reached only when a token is really requested; whatever stops it from
    signing comes back as KeyUnavailable."""

    def assertion(context: dict[str, Any]) -> str:
        try:
            return make(str(context.get("token_endpoint") or token_endpoint))
        except Exception as exc:  # the store's failure, for verification to report
            raise KeyUnavailable(exc) from None

    return assertion


def assertion_callable(
    signer: Callable[[], rsa.RSAPrivateKey],
    *,
    client_id: str,
    thumbprint: str,
    token_endpoint: str,
) -> Callable[[dict[str, Any]], str]:
    """`lazy_assertion` for a certificate: `signer` is asked when MSAL asks."""
    return lazy_assertion(
        lambda audience: sign_assertion(
            signer(), client_id=client_id, audience=audience, thumbprint=thumbprint
        ),
        token_endpoint=token_endpoint,
    )
