"""The OpenID issuer's two public documents: discovery and the JWKS (API.md, "The issuer").

Entra fetches both, anonymously, to check the client assertions the issuer key signs. Neither
needs a caller, and neither costs the key store a call: the discovery document is the setting
`OIDC_ISSUER` alone, and the JWKS comes from the issuer keyring's in-memory copy of its public
keys.
"""

from __future__ import annotations

from typing import Any

from shared.context import AppContext
from shared.core.errors import NotFound

DISCOVERY = ".well-known/openid-configuration"
JWKS = "jwks"
# Five minutes: the documents change only when a key is published or withdrawn, each with 24
# hours of margin (a key is published a day before it signs and kept a day after), so a short
# max-age never matters to Entra (which keeps its own copy for up to a day); it lets a cache in
# front (a CDN, a front door) absorb a flood of fetches while an operator's fix still shows
# within minutes. API.md caps it at an hour.
MAX_AGE_SECONDS = 300
CACHE_HEADERS = {"Cache-Control": f"public, max-age={MAX_AGE_SECONDS}"}
# The members of a public RSA JWK the JWKS may carry; anything else (above all the private
# members d, p, q, dp, dq, qi) is dropped here too, whatever the keyring hands over.
PUBLIC_MEMBERS = ("kty", "use", "alg", "kid", "n", "e")


def discovery(issuer: str) -> dict[str, Any]:
    """The discovery document, exactly as API.md gives it, of the issuer as configured."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/{JWKS}",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def public_keys(jwks: dict[str, Any]) -> dict[str, Any]:
    """The JWKS with each key reduced to its public members."""
    return {
        "keys": [
            {name: key[name] for name in PUBLIC_MEMBERS if name in key}
            for key in jwks.get("keys", [])
        ]
    }


def document(ctx: AppContext, name: str | None) -> dict[str, Any]:
    """The document at `<OIDC_ISSUER>/<name>`; any other name under the issuer is a 404, and so
    is everything while no issuer is configured (in Azure without a host name)."""
    if not ctx.settings.oidc_issuer:
        raise NotFound("no OpenID issuer is configured here: set OIDC_ISSUER")
    if name == DISCOVERY:
        return discovery(ctx.settings.oidc_issuer)
    if name == JWKS:
        return public_keys(ctx.issuer().public_jwks())
    raise NotFound(f"the issuer serves {DISCOVERY} and {JWKS} only")
