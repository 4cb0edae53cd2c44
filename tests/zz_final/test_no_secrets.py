"""Runs last: looks through every response the app gave and every log line of the whole run.

No response body, header or log line may hold a private key (PEM, or bare base64 / hex DER), an
access token or a client assertion (both are JWTs), any token a test handed to the app, a stack
trace, or the storage account key of the run's Azurite connection strings (a setting's value).
The detectors are tested on samples first, so a detector that can never match fails here too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.azurite import AZURITE_KEY
from tests.conftest import SEEN

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


# --- the run -----------------------------------------------------------------------------------
def test_the_run_saw_enough_to_judge() -> None:
    bodies = b"\n".join(body for _, _, _, body in SEEN.responses)
    assert len(SEEN.responses) > 200, "run the whole suite: this test looks at what it saw"
    assert b'"checks"' in bodies and b"BEGIN CERTIFICATE" in bodies
    assert len(SEEN.log_lines) > 500
    assert SEEN.secrets, "the caller-identity tests hand tokens to the app"


def test_no_private_key_token_assertion_or_stack_trace_anywhere() -> None:
    secrets = _secret_fragments()
    leaks = [f"{where}: {leak}" for where, text in _texts() for leak in leaks_in(text, secrets)]
    assert not leaks, "\n".join(leaks[:20])
