"""AUTH_MODE=entra: the caller from an Entra bearer token, validated here (signature against the
issuer's JWKS, `exp`/`nbf` with bounded skew, `aud`, `iss`), the owner from a configured claim."""

from __future__ import annotations

from typing import Any

import jwt

from shared.adapters.identity.base import Caller
from shared.adapters.identity.jwks import ALLOWED_ALGORITHMS, JwksCache
from shared.core.errors import Unauthorized
from shared.core.model import Actor
from shared.core.settings import AuthSettings
from shared.support.guid import parse_guid

MAX_SKEW_SECONDS = 300
# The personal Microsoft accounts tenant: every consumer account carries this tid, so with a
# `{tid}` issuer and tid as the owner they would all share one owner.
CONSUMER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


class EntraAuthenticator:
    def __init__(self, settings: AuthSettings, jwks: JwksCache | None = None) -> None:
        self._settings = settings
        self._jwks = jwks or JwksCache(settings.jwks_uri)

    def owner(self, authorization: str | None) -> str:
        return self._owner(self._validate(_bearer(authorization)))

    def caller(self, authorization: str | None) -> Caller:
        claims = self._validate(_bearer(authorization))
        person = next(
            (v for v in (claims.get("oid"), claims.get("sub")) if isinstance(v, str) and v.strip()),
            None,
        )
        if person is None:
            raise Unauthorized("the bearer token names no person (neither an oid nor a sub claim)")
        return Caller(self._owner(claims), Actor("user", person[:256]))

    def _owner(self, claims: dict[str, Any]) -> str:
        name = self._settings.owner_claim
        value = claims.get(name)
        if not isinstance(value, str) or not value.strip():
            raise Unauthorized(f"the bearer token's {name} claim (the owner) is missing or empty")
        return value

    def _validate(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is malformed") from None
        kid = header.get("kid")
        if header.get("alg") not in ALLOWED_ALGORITHMS or not isinstance(kid, str):
            raise Unauthorized("the bearer token is not signed with a supported key")
        key = self._jwks.key(kid)
        if key is None:
            raise Unauthorized("the bearer token is signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALLOWED_ALGORITHMS,
                audience=list(self._settings.audiences),
                leeway=MAX_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud"], "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the bearer token is for another audience") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the bearer token's signature is not valid") from None
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not valid") from None
        if claims.get("iss") != self._expected_issuer(claims):
            raise Unauthorized("the bearer token is from another issuer")
        return claims

    def _expected_issuer(self, claims: dict[str, Any]) -> str:
        expected = self._settings.issuer
        if "{tid}" not in expected:
            return expected
        tid = claims.get("tid")
        if parse_guid(tid) is None:
            raise Unauthorized("the bearer token's tid claim is not a tenant id (a GUID)")
        if parse_guid(tid) == CONSUMER_TENANT:
            raise Unauthorized(
                "the bearer token is from a personal Microsoft account; sign in with a work or "
                "school account"
            )
        return expected.replace("{tid}", str(tid))


def _bearer(authorization: str | None) -> str:
    # No token, or another scheme (RFC 6750 section 3.1): the challenge carries no error code.
    if not authorization:
        raise Unauthorized(
            "send an Entra access token as Authorization: Bearer <token>", token_sent=False
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send an Entra access token as Authorization: Bearer <token>", token_sent=False
        )
    return token.strip()
