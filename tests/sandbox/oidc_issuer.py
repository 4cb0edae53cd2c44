"""A tiny OpenID issuer on loopback HTTP for the sandbox's federated-credential tests.

It serves `/.well-known/openid-configuration` and `/jwks` from keys made with `cryptography` and
signs assertions with PyJWT, as the function app's own issuer will (API.md, Federated
credentials); keys can be published and withdrawn while it runs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "api://AzureADTokenExchange"


class TestIssuer:
    """`issuer` is `http://127.0.0.1:<port>/oidc`; `publish()` adds a key to the JWKS."""

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.hits: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits.append(self.path)
                if self.path == "/oidc/.well-known/openid-configuration":
                    body: dict[str, Any] = {
                        "issuer": issuer.issuer,
                        "jwks_uri": f"{issuer.issuer}/jwks",
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path == "/oidc/jwks":
                    body = {"keys": issuer.jwks()}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}/oidc"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def publish(self, key: rsa.RSAPrivateKey | None = None) -> str:
        """Add a key (a new one by default) to the JWKS; returns its kid."""
        kid = uuid.uuid4().hex
        self.keys[kid] = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> list[dict[str, Any]]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return keys

    def assertion(
        self,
        subject: str,
        *,
        kid: str,
        key: rsa.RSAPrivateKey | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A client assertion as API.md lists it; `claims` overrides (None removes one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims or {})
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = key or self.keys[kid]
        return jwt.encode(payload, signer, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
