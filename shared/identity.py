"""Who is calling: the owner (portal customer) from an Entra bearer token, or `local-dev`.

Tokens are validated here, not by App Service authentication: signature against the issuer's
JWKS (fetched through `requests`, so REQUESTS_CA_BUNDLE applies), `exp`/`nbf` with at most five
minutes of skew, `aud` and `iss`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import jwt
import requests

from shared.errors import DependencyUnavailable, Unauthorized
from shared.settings import AuthSettings

LOCAL_OWNER = "local-dev"
ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
MAX_SKEW_SECONDS = 300
_JWKS_TTL = 3600  # signing keys roll over rarely; an unknown kid triggers an early refresh
_JWKS_MIN_REFRESH = 30  # but never more often than this, so bad tokens cannot hammer the issuer


class Authenticator(Protocol):
    def owner(self, authorization: str | None) -> str:
        """The owner the caller acts for; raises Unauthorized."""
        ...


class LocalAuthenticator:
    """AUTH_MODE=local: every caller is `local-dev` (refused in Azure by settings)."""

    def owner(self, authorization: str | None) -> str:
        return LOCAL_OWNER


class JwksCache:
    def __init__(self, uri: str, session: requests.Session) -> None:
        self._uri = uri
        self._session = session
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        stale = now - self._fetched_at > _JWKS_TTL
        if kid not in self._keys or stale:
            with self._lock:
                if (kid not in self._keys or stale) and (
                    now - self._fetched_at > _JWKS_MIN_REFRESH or not self._keys
                ):
                    self._keys = self._fetch()
                    self._fetched_at = time.monotonic()
        return self._keys.get(kid)

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        try:
            response = self._session.get(self._uri, timeout=(5, 10))
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise DependencyUnavailable(
                "token signing keys", "the token issuer's signing keys could not be fetched"
            ) from exc
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if not isinstance(entry, dict) or "kid" not in entry:
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type we do not use; skip rather than fail every token
        return keys


class EntraAuthenticator:
    def __init__(self, settings: AuthSettings, session: requests.Session) -> None:
        self._settings = settings
        self._jwks = JwksCache(settings.jwks_uri, session)

    def owner(self, authorization: str | None) -> str:
        claims = self._validate(_bearer(authorization))
        value = claims.get(self._settings.owner_claim)
        if not isinstance(value, str) or not value.strip():
            raise Unauthorized(f"the token has no {self._settings.owner_claim} claim")
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
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not valid") from None
        expected = self._settings.issuer
        if "{tid}" in expected:
            tid = claims.get("tid")
            if not isinstance(tid, str) or not tid:
                raise Unauthorized("the bearer token has no tid claim")
            expected = expected.replace("{tid}", tid)
        if claims.get("iss") != expected:
            raise Unauthorized("the bearer token is from another issuer")
        return claims


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("send an Entra access token as Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an Entra access token as Authorization: Bearer <token>")
    return token.strip()
