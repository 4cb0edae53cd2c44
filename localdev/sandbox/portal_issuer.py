"""The portal issuer: mints the bearer tokens the SaaS portal sends to the app (`AUTH_MODE=entra`).

Why: the app validates the portal's Entra tokens against an issuer and a JWKS. Tests need valid,
expired, wrongly-addressed and otherwise odd tokens on demand, signed by a key the app can fetch,
without a real Entra sign-in. The key is the sandbox's own, separate from the one that signs
Graph access tokens.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from localdev.sandbox.signing import SigningKey
from localdev.sandbox.wire import json_response


class PortalIssuer:
    """JWKS and OpenID metadata for the portal's tokens, and the minting of them."""

    def __init__(self, signing_key: SigningKey, base_url: str) -> None:
        self._key = signing_key
        self._base_url = base_url

    def issuer(self, tenant_id: str) -> str:
        return f"{self._base_url}/{tenant_id}/v2.0"

    def jwks_uri(self, tenant_id: str) -> str:
        return f"{self._base_url}/portal/{tenant_id}/discovery/v2.0/keys"

    def jwks(self, request: Request, tenant_id: str) -> Response:
        """`GET /portal/{tid}/discovery/v2.0/keys` (the same key for every tenant id)."""
        return json_response(self._key.jwks())

    def metadata(self, request: Request, tenant_id: str) -> Response:
        """`GET /portal/{tid}/v2.0/.well-known/openid-configuration`, for discovering clients."""
        return json_response(
            {
                "issuer": self.issuer(tenant_id),
                "jwks_uri": self.jwks_uri(tenant_id),
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint": f"{self._base_url}/{tenant_id}/oauth2/v2.0/token",
            }
        )

    def mint(
        self,
        tenant_id: str,
        audience: str,
        claims: dict[str, Any] | None = None,
        expires_in: int = 3600,
    ) -> str:
        """An RS256 token; `claims` override the defaults, and a `None` value removes a claim."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer(tenant_id),
            "tid": tenant_id,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "oid": str(uuid.uuid4()),
            "sub": secrets.token_urlsafe(32),
        }
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return self._key.sign(payload)
