"""Runs last: looks through every response the app gave, every log line and every exported
telemetry item (span names, attributes and events, log records, metric attributes: the
session's in-memory OpenTelemetry SDK, `tests/telemetry/collect.py`) of the whole run.

No response body, header, log line or telemetry item may hold a private key (PEM, or bare
base64 / hex DER), an access token or a client assertion (both are JWTs), a Graph proof of
possession (addKey / removeKey), any token a test handed to the app, a stack trace, or the
storage account key of the run's Azurite connection strings (a setting's value). The detectors
are tested on samples first, so a detector that can never match fails here too.

Stored records are judged too: every row of every SQLite account store (`accounts.sqlite3`)
under the run's temporary folder and every entity of every table in the run's Azurite. A private
JWK member (`d`, `p`, `q`, `dp`, `dq`, `qi` with a value, in JSON or a Python repr) is a leak
anywhere; a JWT is a leak anywhere, and one signed by the service's OpenID issuer (a `kid`, no
`x5t`) is named as a federated client assertion.

The module walks a flow of its own first (link, verify, automatic renewal with its addKey and
removeKey, a bearer-token caller, refusals, and a federated credential on Table Storage all the
way to unlink, with the issuer key's private members and the assertion Entra accepted taken as
secrets), so run alone it still judges every kind of secret; run last in the whole suite it
judges everything the suite saw as well.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.data.tables import TableServiceClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.azurite import AZURITE_KEY, Azurite
from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import SEEN, RunningApp
from tests.e2e.customer import Customer
from tests.e2e.test_federated_flow import FederatedCustomer
from tests.telemetry.collect import TELEMETRY

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"  # FACTS §10: addKey/removeKey proofs
PORTAL_AUDIENCE = "api://portal-backend"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"  # FACTS §12: the issuer's assertions
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# DER of an RSA private key: SEQUENCE (30 82 len len), then INTEGER 0 (02 01 00), then the
# PKCS#8 AlgorithmIdentifier (30 0d) or the PKCS#1 modulus (02 82). In base64 that is
# "MII" + 3 characters + "IBA" + "DAN" / "AKC" (MIIEvQIBADAN..., MIIEpAIBAAKC...), whatever the
# size; a certificate ("MIIC...CCA") never has it. Standard and URL-safe alphabets, with or
# without line breaks after the first characters.
DER_PRIVATE_KEY_B64 = re.compile(r"MII[A-Za-z0-9+/_-]{3}IBA(?:DAN|AKC)")
DER_PRIVATE_KEY_HEX = re.compile(r"30820[0-9a-f]{3}020100(?:300d|0282)", re.IGNORECASE)
# A JSON Web Key's private members with a value (Key Vault and JWKS speak JWK): in JSON, in JSON
# escaped inside a string, or in a Python repr. A real member is hundreds of characters.
JWK_PRIVATE = re.compile(r"""\\?["'](?:d|p|q|dp|dq|qi)\\?["']\s*:\s*\\?["'][A-Za-z0-9_-]{8,}""")
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
    for i, text in enumerate(TELEMETRY.texts):
        yield f"telemetry item {i}", text
    for i, text in enumerate(TELEMETRY.metric_attribute_texts()):
        yield f"metric point {i}", text


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
    for token in JWT.findall(text):
        found.append(_which_jwt(token))
    if TRACEBACK.search(text):
        found.append("a stack trace")
    if AZURITE_KEY in text or AZURITE_KEY[:40] in text:
        found.append("the storage account key of a connection string")
    found.extend("a token a test sent (or part of it)" for s in secrets if s in text)
    return found


def _which_jwt(token: str) -> str:
    """A JWT whose header names a `kid` and no certificate is what the service's issuer signs
    (a federated client assertion); any other is a token, an assertion or a proof."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        header = {}
    if "kid" in header and "x5t" not in header and "x5t#S256" not in header:
        return "a JWT signed by the issuer (a federated client assertion)"
    return "a JWT (token or client assertion)"


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


@pytest.mark.parametrize("member", PRIVATE_JWK_MEMBERS)
def test_the_detectors_find_every_private_jwk_member_in_every_form(member: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    value = private[member]
    for sample in (
        json.dumps({"kty": "RSA", member: value}),
        json.dumps(json.dumps({member: value})),  # JSON inside a JSON string
        repr({member: value}),  # a Python dict in a log line
        f'{{"{member}":"{value[:12]}"}}',  # part of one
    ):
        assert "a private JWK member" in leaks_in(sample), sample[:40]


def test_the_detectors_name_an_assertion_signed_by_the_issuer() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": "http://127.0.0.1:7071/api/oidc", "sub": "m365link:key:x", "jti": "1"}
    federated = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "abc"})
    certificate = jwt.encode(claims, key, algorithm="RS256", headers={"x5t": "abc"})
    assert leaks_in(f"client_assertion={federated}") == [
        "a JWT signed by the issuer (a federated client assertion)"
    ]
    assert leaks_in(f"client_assertion={certificate}") == ["a JWT (token or client assertion)"]


def test_the_detectors_pass_what_the_app_may_say() -> None:
    cert_b64 = (
        "MIIC+jCCAeKgAwIBAgIUJ2s8CCAeKgAwIBAgIUWm9mZQYJKoZIhvcNAQELBQAwEjEQMA4GA1UEAwwHQ29udG9z"
    )
    for text in (
        '{"certificatePem": "-----BEGIN CERTIFICATE-----\\n' + cert_b64 + '\\n-----END"}',
        "function=generate_key unhandled error: TypeError at shared/keys.py:88 in create_key",
        '{"thumbprint": "' + "A" * 40 + '", "keyId": "3b1f0a54-c2e9-4d1b-8f7e-6a5d4c3b2a19"}',
        _public_jwks(),
        '{"federation": {"issuer": "http://127.0.0.1:7071/api/oidc", "subject": "m365link:key:'
        '3b1f0a54-c2e9-4d1b-8f7e-6a5d4c3b2a19", "audience": "api://AzureADTokenExchange", '
        '"name": "m365link-Contoso-3b1f0a54"}, "d": null, "p": ""}',
    ):
        assert leaks_in(text) == [], text


def _public_jwks() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})


# --- a flow of its own, so that the module judges every kind of secret even when run alone ----
def _claims(jws: str) -> dict[str, Any]:
    if jws.count(".") != 2:
        return {}  # not a JWT (a key's private member, say)
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


def _issuer_key_members(app: RunningApp) -> set[str]:
    """The private JWK members of the issuer's keys (`local` custody: PEM files in the state
    folder), to be looked for verbatim everywhere."""
    members: set[str] = set()
    folder = app.context.settings.local_state_dir / "keys"
    for record in app.context.accounts.issuer_keys():
        pem = (folder / f"{record.key_id}.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
        members.update(jwk[m] for m in PRIVATE_JWK_MEMBERS)
    return members


def _federated_all_the_way(app: RunningApp, sandbox: Any) -> None:
    """A federated credential on Table Storage: made, downloaded, added in the sandbox, linked,
    verified (the issuer signs), the JWKS read, a timer run, unlinked."""
    customer = FederatedCustomer(app, sandbox).federated_all_the_way()
    assert customer.verify()["status"] == "connected"
    # The assertion Entra accepted is among the secrets the run looks for.
    accepted = sandbox.admin.last_federated_assertion()
    sent = {_claims(secret).get("jti") for secret in SEEN.secrets}
    assert accepted["claims"]["jti"] in sent
    assert app.http.get(app.api("/oidc/jwks")).status_code == 200
    assert app.http.get(app.api("/oidc/.well-known/openid-configuration")).status_code == 200
    assert customer.download_json()["subject"] == customer.key["federation"]["subject"]
    assert app.http.get(app.api("/health")).status_code == 200
    health_check.run(app.context)
    members = _issuer_key_members(app)
    assert len(members) >= len(PRIVATE_JWK_MEMBERS)
    ISSUER_MEMBERS.update(members)
    SEEN.secrets.update(members)
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204


ISSUER_MEMBERS: set[str] = set()


def test_a_flow_of_its_own_hands_the_app_every_kind_of_secret(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, azurite: Azurite
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
    _federated_all_the_way(
        sandboxed_app(
            {
                "ACCOUNTS_STORAGE": azurite.connection_string,
                "ACCOUNTS_TABLE_NAME": "t" + uuid.uuid4().hex[:16],
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
    # The exported telemetry was kept: invocation and outbound spans, log records, metrics.
    assert TELEMETRY.installed
    texts = "\n".join(TELEMETRY.texts)
    assert "span POST /api/accounts/{id}/verify" in texts and "url.template=" in texts
    assert "log record request function=" in texts
    assert TELEMETRY.metric_attribute_texts()
    audiences = [_claims(secret).get("aud") for secret in SEEN.secrets]
    # Client assertions (aud: the token endpoint), proofs of possession (aud: the AAD Graph
    # id) and bearer tokens were all registered, so every kind is looked for below.
    assert any(isinstance(a, str) and a.endswith("/oauth2/v2.0/token") for a in audiences)
    assert audiences.count(PROOF_AUDIENCE) >= 2, "addKey and removeKey proofs"
    assert PORTAL_AUDIENCE in audiences
    # Federated assertions were registered, the issuer's JWKS was answered (and is judged like
    # any answer), and the issuer key's private members are looked for verbatim.
    assert FEDERATED_AUDIENCE in audiences
    assert b'"kty"' in bodies and b'"kid"' in bodies
    assert ISSUER_MEMBERS and SEEN.secrets >= ISSUER_MEMBERS


def test_no_private_key_token_assertion_or_stack_trace_anywhere() -> None:
    secrets = _secret_fragments()
    leaks = [f"{where}: {leak}" for where, text in _texts() for leak in leaks_in(text, secrets)]
    assert not leaks, "\n".join(leaks[:20])


def _stored_records(base: Path, azurite: Azurite) -> Iterator[tuple[str, str]]:
    """Every row of every SQLite account store under `base`, and every entity of every table in
    Azurite, as text (each value on its own line)."""
    for path in sorted(base.rglob("accounts.sqlite3")):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            for (table,) in names:
                for i, row in enumerate(db.execute(f'SELECT * FROM "{table}"')):  # noqa: S608
                    yield f"stored row {path} {table} #{i}", "\n".join(map(str, row))
        finally:
            db.close()
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    for table in service.list_tables():
        for entity in service.get_table_client(table.name).list_entities():
            where = (
                f"stored entity {table.name} {entity.get('PartitionKey')}/{entity.get('RowKey')}"
            )
            yield where, "\n".join(map(str, entity.values()))


def test_no_private_key_token_or_assertion_in_any_stored_record(
    azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secrets = _secret_fragments()
    records = list(_stored_records(tmp_path_factory.getbasetemp(), azurite))
    assert any(where.startswith("stored row") for where, _ in records)
    assert any(where.startswith("stored entity") for where, _ in records)
    leaks = [f"{where}: {leak}" for where, text in records for leak in leaks_in(text, secrets)]
    assert not leaks, "\n".join(leaks[:20])
