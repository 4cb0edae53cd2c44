"""AUTH_MODE=entra: bearer tokens checked against the issuer's JWKS (the sandbox portal issuer)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import SEEN, RunningApp

AUDIENCE = "api://portal-backend"
OTHER_AUDIENCE = "b6f2f0a4-1111-2222-3333-444455556666"
KEY_BODY = {
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "applicationId": "11111111-2222-3333-4444-555555555555",
    "displayName": "Prod",
}


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> RunningApp:
    return sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": f"{AUDIENCE},{OTHER_AUDIENCE}",
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
        }
    )


def token(sandbox: Any, tid: str, aud: str = AUDIENCE, **kwargs: Any) -> str:
    minted: str = sandbox.admin.mint_portal_token(tid, aud, **kwargs)
    SEEN.secrets.add(minted)
    return minted


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_valid_token_names_the_owner_and_owners_are_isolated(
    app: RunningApp, sandbox: Any
) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    as_alice, as_bob = bearer(token(sandbox, alice)), bearer(token(sandbox, bob, OTHER_AUDIENCE))
    created = app.http.post(app.api("/keys"), json=KEY_BODY, headers=as_alice)
    assert created.status_code == 201
    key_id = created.json()["keyId"]
    assert app.http.get(app.api(f"/keys/{key_id}"), headers=as_alice).status_code == 200
    theirs = app.http.get(app.api(f"/keys/{key_id}"), headers=as_bob)
    assert theirs.status_code == 404 and "CERTIFICATE" not in theirs.text
    download = app.http.get(app.api(f"/keys/{key_id}"), params={"format": "cer"}, headers=as_bob)
    assert download.status_code == 404
    link = {**KEY_BODY, "displayName": "x", "keyId": key_id}
    stolen = app.http.post(app.api("/accounts"), json=link, headers=as_bob)
    assert stolen.status_code == 400 and stolen.json()["errors"][0]["field"] == "keyId"
    account = app.http.post(app.api("/accounts"), json=link, headers=as_alice).json()
    for method, path in (
        ("GET", f"/accounts/{account['id']}"),
        ("DELETE", f"/accounts/{account['id']}"),
        ("POST", f"/accounts/{account['id']}/verify"),
    ):
        assert app.http.request(method, app.api(path), headers=as_bob).status_code == 404
    assert app.http.get(app.api("/accounts"), headers=as_bob).json() == {"value": []}
    assert (
        app.http.get(app.api("/accounts"), headers=as_alice).json()["value"][0]["id"]
        == (account["id"])
    )
    onboarding = app.http.get(app.api("/onboarding"), headers=as_bob).json()
    assert onboarding["linkedAccounts"] == 0


def _own_key_token(claims: dict[str, Any], kid: str = "not-the-issuers") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(sandbox: Any, claims: dict[str, Any]) -> str:
    """The classic alg confusion: HMAC keyed with the issuer's public key PEM, under its kid.
    (PyJWT refuses to make one, so it is put together by hand.)"""
    secret = sandbox.portal_signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": sandbox.portal_signing_key.kid}
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


# Each case with the rule that must refuse it: the detail proves the token got that far.
BAD_TOKENS = {
    "missing": "Authorization: Bearer",
    "not-bearer": "Authorization: Bearer",
    "garbage": "malformed",
    "expired": "expired",
    "future": "not valid yet",
    "nbf-beyond-skew": "not valid yet",
    "audience": "another audience",
    "issuer": "another issuer",
    "unknown-kid": "unknown key",
    "wrong-signature": "signature is not valid",
    "alg-confusion": "not signed with a supported key",
    "alg-none": "not signed with a supported key",
    "tid-not-guid": "tid claim is not a tenant id",
    "tid-newline": "tid claim is not a tenant id",
    "consumer-tenant": "personal Microsoft account",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_401_with_www_authenticate(app: RunningApp, sandbox: Any, case: str) -> None:
    tid = str(uuid.uuid4())
    now = int(time.time())
    issued = {"tid": tid, "aud": AUDIENCE, "iss": f"{sandbox.base_url}/{tid}/v2.0"}
    headers: dict[str, str] = {}
    if case == "not-bearer":
        headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    elif case == "garbage":
        headers = bearer("not.a.jwt")
    elif case == "expired":
        headers = bearer(token(sandbox, tid, claims={"exp": now - 301, "nbf": now - 3600}))
    elif case == "future":
        headers = bearer(token(sandbox, tid, claims={"nbf": now + 600}))
    elif case == "nbf-beyond-skew":
        headers = bearer(token(sandbox, tid, claims={"nbf": now + 360}))
    elif case == "audience":
        headers = bearer(token(sandbox, tid, aud="api://someone-else"))
    elif case == "issuer":
        headers = bearer(token(sandbox, tid, claims={"iss": "https://evil.example/" + tid}))
    elif case == "unknown-kid":
        headers = bearer(_own_key_token({**issued, "exp": now + 600}))
    elif case == "wrong-signature":
        forged = _own_key_token({**issued, "exp": now + 600}, kid=sandbox.portal_signing_key.kid)
        headers = bearer(forged)
    elif case == "alg-confusion":
        headers = bearer(_hs256_with_public_key(sandbox, {**issued, "exp": now + 600}))
    elif case == "alg-none":
        headers = bearer(jwt.encode({"tid": tid, "aud": AUDIENCE}, None, algorithm="none"))
    elif case == "tid-not-guid":
        headers = bearer(token(sandbox, "contoso"))  # iss names the same tid: only tid is wrong
    elif case == "tid-newline":
        headers = bearer(token(sandbox, tid + "\n"))
    elif case == "consumer-tenant":
        headers = bearer(token(sandbox, "9188040d-6c67-4c5b-b112-36a304b66dad"))
    for method, path in (("GET", "/accounts"), ("POST", "/keys"), ("GET", "/onboarding")):
        response = app.http.request(method, app.api(path), headers=headers, json=KEY_BODY)
        assert response.status_code == 401, (case, response.text)
        assert BAD_TOKENS[case] in response.json()["detail"], (case, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
        challenge = response.headers["WWW-Authenticate"]
        if case in ("missing", "not-bearer"):  # RFC 6750 3.1: no token sent, no error code
            assert challenge == "Bearer"
        else:
            assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    assert list(app.context.accounts.list_keys()) == []


def test_nbf_inside_the_skew_is_accepted(app: RunningApp, sandbox: Any) -> None:
    early = token(sandbox, str(uuid.uuid4()), claims={"nbf": int(time.time()) + 240})
    assert app.http.get(app.api("/accounts"), headers=bearer(early)).status_code == 200


@pytest.mark.parametrize("owner", ["", "   ", 42, ["a"], None], ids=repr)
def test_an_empty_or_non_string_owner_claim_is_refused_by_the_owner_rule(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, owner: object
) -> None:
    # A fixed issuer (no {tid}), so the default owner claim tid reaches the owner rule itself.
    home = str(uuid.uuid4())
    app = sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_ISSUER": f"{sandbox.base_url}/{home}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
        }
    )
    valid = bearer(token(sandbox, home))
    assert app.http.get(app.api("/accounts"), headers=valid).status_code == 200
    # A None claim value removes the claim: the minted iss stays the home tenant's.
    odd = bearer(token(sandbox, home, claims={"tid": owner}))
    response = app.http.get(app.api("/accounts"), headers=odd)
    assert response.status_code == 401
    assert "tid claim (the owner) is missing or empty" in response.json()["detail"]


def test_signing_keys_are_fetched_once_and_kept_when_the_issuer_is_down(
    app: RunningApp, sandbox: Any
) -> None:
    tid = str(uuid.uuid4())
    valid = bearer(token(sandbox, tid))
    for _ in range(10):
        assert app.http.get(app.api("/accounts"), headers=valid).status_code == 200
    for _ in range(10):  # kids nobody publishes: refused, and no refetch inside 30 s
        forged = bearer(_own_key_token({"tid": tid, "aud": AUDIENCE}, kid=str(uuid.uuid4())))
        assert app.http.get(app.api("/accounts"), headers=forged).status_code == 401
    assert sandbox.admin.requests()["counts"]["portal"] == 1
    sandbox.admin.add_fault("portal", 503)
    try:
        assert app.http.get(app.api("/accounts"), headers=valid).status_code == 200
        forged = bearer(_own_key_token({"tid": tid, "aud": AUDIENCE}, kid=str(uuid.uuid4())))
        assert app.http.get(app.api("/accounts"), headers=forged).status_code == 401
    finally:
        sandbox.admin.clear_faults()


def test_clock_skew_up_to_five_minutes_is_tolerated(app: RunningApp, sandbox: Any) -> None:
    now = int(time.time())
    late = token(sandbox, str(uuid.uuid4()), claims={"exp": now - 240, "nbf": now - 3600})
    assert app.http.get(app.api("/accounts"), headers=bearer(late)).status_code == 200


def test_health_needs_no_token(app: RunningApp) -> None:
    assert app.http.get(app.api("/health")).status_code == 200


def test_jwks_unreachable_is_a_503(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> None:
    app = sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": "https://127.0.0.1:9/keys",  # nothing listens on the discard port
        }
    )
    response = app.http.get(app.api("/accounts"), headers=bearer(token(sandbox, str(uuid.uuid4()))))
    assert response.status_code == 503 and "Retry-After" in response.headers


def test_the_owner_comes_from_the_configured_claim(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
            "AUTH_OWNER_CLAIM": "portal_customer",
        }
    )
    tid = str(uuid.uuid4())  # one tenant, two portal customers
    first = bearer(token(sandbox, tid, claims={"portal_customer": "customer-1"}))
    second = bearer(token(sandbox, tid, claims={"portal_customer": "customer-2"}))
    created = app.http.post(app.api("/keys"), json=KEY_BODY, headers=first)
    assert created.status_code == 201
    key_id = created.json()["keyId"]
    assert app.http.get(app.api(f"/keys/{key_id}"), headers=first).status_code == 200
    assert app.http.get(app.api(f"/keys/{key_id}"), headers=second).status_code == 404
    assert app.context.accounts.get_key("customer-1", key_id) is not None
    missing = bearer(token(sandbox, tid))
    assert app.http.get(app.api("/accounts"), headers=missing).status_code == 401
