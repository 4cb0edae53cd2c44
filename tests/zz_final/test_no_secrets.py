"""Runs last: looks through every response the app gave and every log line of the whole run.

No response body, header or log line may hold a private key (PEM, or bare base64 / hex DER), an
access token or a client assertion (both are JWTs), a Graph proof of possession (addKey /
removeKey), any token a test handed to the app, a stack trace, or the storage account key of the
run's Azurite connection strings (a setting's value). The detectors are tested on samples first,
so a detector that can never match fails here too.

The module walks a flow of its own first (link, verify, automatic renewal with its addKey and
removeKey, a bearer-token caller, refusals), so run alone it still judges every kind of secret;
run last in the whole suite it judges everything the suite saw as well.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.azurite import AZURITE_KEY
from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import SEEN, RunningApp
from tests.e2e.customer import Customer

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"  # FACTS §10: addKey/removeKey proofs
PORTAL_AUDIENCE = "api://portal-backend"

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# DER of an RSA private key: SEQUENCE (30 82 len len), then INTEGER 0 (02 01 00), then the
# PKCS#8 AlgorithmIdentifier (30 0d) or the PKCS#1 modulus (02 82). In base64 that is
# "MII" + 3 characters + "IBA" + "DAN" / "AKC" (MIIEvQIBADAN..., MIIEpAIBAAKC...), whatever the
# size; a certificate ("MIIC...CCA") never has it. Standard and URL-safe alphabets, with or
# without line breaks after the first characters.
DER_PRIVATE_KEY_B64 = re.compile(r"MII[A-Za-z0-9+/_-]{3}IBA(?:DAN|AKC)")
DER_PRIVATE_KEY_HEX = re.compile(r"30820[0-9a-f]{3}020100(?:300d|0282)", re.IGNORECASE)
# A JSON Web Key's private members (Key Vault and JWKS speak JWK).
JWK_PRIVATE = re.compile(r'"(?:d|p|q|dp|dq|qi)"\s*:\s*"[A-Za-z0-9_-]{20,}')
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


def _texts() -> Iterator[tuple[str, str]]:
    for url, status, headers, body in SEEN.responses:
        where = f"response {status} {url}"
        yield where + " headers", "\n".join(f"{k}: {v}" for k, v in headers.items())
        yield where + " body", body.decode("utf-8", errors="replace")
    for i, line in enumerate(SEEN.log_lines):
        # The sandbox tenant is a test double, not the app: its own log lines are not judged.
        if not line.startswith("localdev.sandbox"):
            yield f"log line {i}", line


def _secret_fragments() -> set[str]:
    """Every token a test handed over, and the signature of each JWT among them on its own (a
    leak of part of a token is a leak)."""
    fragments = set()
    for secret in SEEN.secrets:
        fragments.add(secret)
        signature = secret.rsplit(".", 1)[-1] if secret.count(".") == 2 else ""
        if len(signature) >= 40:
            fragments.add(signature)
    return fragments


def leaks_in(text: str, secrets: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    found = []
    if "PRIVATE KEY" in text or PEM_PRIVATE_KEY.search(text):
        found.append("a PEM private key")
    if DER_PRIVATE_KEY_B64.search(text.replace("\\n", "").replace("\n", "")):
        found.append("a base64 DER private key")
    if DER_PRIVATE_KEY_HEX.search(text):
        found.append("a hex DER private key")
    if JWK_PRIVATE.search(text):
        found.append("a private JWK member")
    if JWT.search(text):
        found.append("a JWT (token or client assertion)")
    if TRACEBACK.search(text):
        found.append("a stack trace")
    if AZURITE_KEY in text or AZURITE_KEY[:40] in text:
        found.append("the storage account key of a connection string")
    found.extend("a token a test sent (or part of it)" for s in secrets if s in text)
    return found


# --- the detectors, on samples -----------------------------------------------------------------
def _sample_keys() -> list[bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        )
    ]


@pytest.mark.parametrize("der", _sample_keys(), ids=["pkcs8", "pkcs1"])
def test_the_detectors_find_private_keys_in_every_encoding(der: bytes) -> None:
    b64 = base64.b64encode(der).decode()
    for sample in (
        b64,
        base64.urlsafe_b64encode(der).decode(),
        "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64)),
        '{"pem": "' + "\\n".join(b64[i : i + 64] for i in range(0, len(b64), 64)) + '"}',
        der.hex(),
        der.hex().upper(),
    ):
        assert leaks_in(f"log line with {sample} in it"), sample[:20]


def test_the_detectors_find_tokens_traces_and_settings() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0." + "s" * 342
    assert leaks_in(f"Authorization: Bearer {token}")
    assert leaks_in("s" * 342, {"s" * 342})
    assert leaks_in('Traceback (most recent call last):\n  File "/app/x.py", line 3, in f')
    assert leaks_in('  File "shared/keys.py", line 88, in create_key')
    assert leaks_in(f"AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};")
    assert leaks_in('{"kty": "RSA", "n": "abc", "d": "' + "A" * 64 + '"}')


def test_the_detectors_pass_what_the_app_may_say() -> None:
    cert_b64 = (
        "MIIC+jCCAeKgAwIBAgIUJ2s8CCAeKgAwIBAgIUWm9mZQYJKoZIhvcNAQELBQAwEjEQMA4GA1UEAwwHQ29udG9z"
    )
    for text in (
        '{"certificatePem": "-----BEGIN CERTIFICATE-----\\n' + cert_b64 + '\\n-----END"}',
        "function=generate_key unhandled error: TypeError at shared/keys.py:88 in create_key",
        '{"thumbprint": "' + "A" * 40 + '", "keyId": "3b1f0a54-c2e9-4d1b-8f7e-6a5d4c3b2a19"}',
    ):
        assert leaks_in(text) == [], text


# --- a flow of its own, so that the module judges every kind of secret even when run alone ----
def _claims(jws: str) -> dict[str, Any]:
    payload = jws.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _automatic_renewal_all_the_way(app: RunningApp, sandbox: Any) -> None:
    """Link, verify, renew automatically (addKey), switch, retire (removeKey), and a few
    refusals: the app signs assertions and proofs and receives tokens along the way."""
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    account = app.api(f"/accounts/{customer.account['id']}")
    patched = app.http.patch(account, json={"certificateRenewal": "automatic"})
    assert patched.status_code == 200, patched.text
    started = app.http.post(f"{account}/rotation", json={})
    assert started.status_code == 201, started.text
    assert started.json()["appRegistration"]["addKey"] == "done"
    assert customer.verify()["rotation"]["status"] == "completed"
    health_check.run(app.context, now=utc_now() + timedelta(days=8))
    assert customer.current()["rotation"]["appRegistration"]["removeKey"] == "done"
    assert app.http.post(app.api("/keys"), data=b"{not json").status_code in (400, 415)
    unknown = app.api("/accounts/00000000-0000-0000-0000-000000000000")
    assert app.http.get(unknown).status_code == 404
    assert app.http.put(account).status_code == 405


def _a_caller_with_a_token(app: RunningApp, sandbox: Any) -> None:
    good = sandbox.admin.mint_portal_token("72f988bf-86f1-41af-91ab-2d7cd011db47", PORTAL_AUDIENCE)
    SEEN.secrets.add(good)
    assert app.http.get(app.api("/accounts"), headers={"Authorization": f"Bearer {good}"}).ok
    wrong = sandbox.admin.mint_portal_token("72f988bf-86f1-41af-91ab-2d7cd011db47", "api://other")
    SEEN.secrets.add(wrong)
    refused = app.http.get(app.api("/accounts"), headers={"Authorization": f"Bearer {wrong}"})
    assert refused.status_code == 401


def test_a_flow_of_its_own_hands_the_app_every_kind_of_secret(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    _automatic_renewal_all_the_way(sandboxed_app(), sandbox)
    _a_caller_with_a_token(
        sandboxed_app(
            {
                "AUTH_MODE": "entra",
                "AUTH_AUDIENCE": PORTAL_AUDIENCE,
                "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
                "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
            }
        ),
        sandbox,
    )


# --- the run -----------------------------------------------------------------------------------
def test_the_run_saw_enough_to_judge() -> None:
    bodies = b"\n".join(body for _, _, _, body in SEEN.responses)
    assert len(SEEN.responses) > 10
    assert b'"checks"' in bodies and b"BEGIN CERTIFICATE" in bodies
    assert len(SEEN.log_lines) > 100
    audiences = [_claims(secret).get("aud") for secret in SEEN.secrets]
    # Client assertions (aud: the token endpoint), proofs of possession (aud: the AAD Graph
    # id) and bearer tokens were all registered, so every kind is looked for below.
    assert any(isinstance(a, str) and a.endswith("/oauth2/v2.0/token") for a in audiences)
    assert audiences.count(PROOF_AUDIENCE) >= 2, "addKey and removeKey proofs"
    assert PORTAL_AUDIENCE in audiences


def test_no_private_key_token_assertion_or_stack_trace_anywhere() -> None:
    secrets = _secret_fragments()
    leaks = [f"{where}: {leak}" for where, text in _texts() for leak in leaks_in(text, secrets)]
    assert not leaks, "\n".join(leaks[:20])
