"""AUTH_MODE=entra: bearer tokens checked against the issuer's JWKS (the sandbox portal issuer)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
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


def _own_key_token(claims: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "not-the-issuers"})


@pytest.mark.parametrize(
    "case", ["missing", "not-bearer", "garbage", "expired", "future", "audience", "issuer",
             "signature", "no-owner", "alg-none"],
)  # fmt: skip
def test_bad_tokens_are_401_with_www_authenticate(app: RunningApp, sandbox: Any, case: str) -> None:
    tid = str(uuid.uuid4())
    now = int(time.time())
    headers: dict[str, str] = {}
    if case == "not-bearer":
        headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    elif case == "garbage":
        headers = bearer("not.a.jwt")
    elif case == "expired":
        headers = bearer(token(sandbox, tid, claims={"exp": now - 301, "nbf": now - 3600}))
    elif case == "future":
        headers = bearer(token(sandbox, tid, claims={"nbf": now + 600}))
    elif case == "audience":
        headers = bearer(token(sandbox, tid, aud="api://someone-else"))
    elif case == "issuer":
        headers = bearer(token(sandbox, tid, claims={"iss": "https://evil.example/" + tid}))
    elif case == "signature":
        forged = _own_key_token({"tid": tid, "aud": AUDIENCE, "exp": now + 600})
        headers = bearer(forged)
    elif case == "no-owner":
        headers = bearer(token(sandbox, tid, claims={"tid": ""}))
    elif case == "alg-none":
        headers = bearer(jwt.encode({"tid": tid, "aud": AUDIENCE}, None, algorithm="none"))
    for method, path in (("GET", "/accounts"), ("POST", "/keys"), ("GET", "/onboarding")):
        response = app.http.request(method, app.api(path), headers=headers, json=KEY_BODY)
        assert response.status_code == 401, (case, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers["Content-Type"] == "application/problem+json"
    assert list(app.context.accounts.list_keys()) == []


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
