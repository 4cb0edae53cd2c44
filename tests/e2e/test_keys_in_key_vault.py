"""POST /api/keys with KEY_VAULT_URL set: the private key lives in (the stand-in of) Key Vault,
as a non-exportable key (`vault-key`, the default) or as a secret (`KEY_CUSTODY=vault-secret`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from shared.core import certificates
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential

BODY = {
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "applicationId": "11111111-2222-3333-4444-555555555555",
    "displayName": "Prod",
}


ROLES = {"vault-key": "Key Vault Crypto Officer", "vault-secret": "Key Vault Secrets Officer"}


@pytest.fixture(params=["vault-key", "vault-secret"])
def custody(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any, custody: str) -> RunningApp:
    return sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": custody},
        vault_credential=StaticCredential(),
    )


def held(sandbox: Any, custody: str) -> list[str]:
    """The names the vault holds, live, for this custody (keys or secrets)."""
    if custody == "vault-key":
        return [k["name"] for k in sandbox.admin.keyvault_keys()["keys"]]
    return [s["name"] for s in sandbox.admin.keyvault_state()["secrets"]]


def test_private_key_goes_to_the_vault_and_nowhere_else(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    response = app.http.post(app.api("/keys"), json=BODY)
    assert response.status_code == 201
    key = response.json()
    assert key["custody"] == custody
    assert held(sandbox, custody) == [f"m365link-{key['keyId']}"]
    other = "vault-secret" if custody == "vault-key" else "vault-key"
    assert held(sandbox, other) == []  # one copy, in one form
    assert certificates.signer_matches(app.context.keys.signer(key["keyId"]), key["certificatePem"])
    local_keys = app.context.settings.local_state_dir / "keys"
    assert not local_keys.exists() or not any(local_keys.iterdir())
    health = app.http.get(app.api("/health")).json()
    assert health["keyStore"]["backend"] == "keyvault"
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json()["custody"] == custody


def test_vault_down_is_a_503_and_writes_no_record(app: RunningApp, sandbox: Any) -> None:
    sandbox.admin.add_fault("keyvault", 503)
    try:
        response = app.http.post(app.api("/keys"), json=BODY)
        health = app.http.get(app.api("/health"))
    finally:
        sandbox.admin.clear_faults()
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert "Key Vault" in response.json()["detail"]
    assert list(app.context.accounts.list_keys()) == []
    assert health.status_code == 503 and health.json()["keyStore"]["status"] == "unavailable"


def test_unlink_with_the_vault_down_leaves_the_deletion_for_the_health_check(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    key = app.http.post(app.api("/keys"), json=BODY).json()
    link = {**BODY, "keyId": key["keyId"], "displayName": "Prod"}
    account = app.http.post(app.api("/accounts"), json=link).json()
    sandbox.admin.add_fault("keyvault", 503)
    try:
        response = app.http.delete(app.api(f"/accounts/{account['id']}"))
    finally:
        sandbox.admin.clear_faults()
    assert response.status_code == 204  # gone for the customer
    assert app.http.get(app.api(f"/accounts/{account['id']}")).status_code == 404
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).status_code == 404
    pending = app.context.accounts.get_key("local-dev", key["keyId"])
    assert pending is not None and pending.deleting  # recorded for the retry
    assert f"m365link-{key['keyId']}" in held(sandbox, custody)
    # The pair can be linked again at once with a new key.
    fresh = app.http.post(app.api("/keys"), json=BODY).json()
    again = app.http.post(app.api("/accounts"), json={**link, "keyId": fresh["keyId"]})
    assert again.status_code == 201
    assert uuid.UUID(again.json()["id"])


def test_vault_refusing_the_identity_names_the_role_and_unlink_still_works(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    key = app.http.post(app.api("/keys"), json=BODY).json()
    account = app.http.post(app.api("/accounts"), json={**BODY, "keyId": key["keyId"]}).json()
    sandbox.admin.add_fault("keyvault", 403)
    try:
        response = app.http.post(app.api("/keys"), json=BODY)
        health = app.http.get(app.api("/health"))
        unlinked = app.http.delete(app.api(f"/accounts/{account['id']}"))
    finally:
        sandbox.admin.clear_faults()
    # Not a 503 to retry: the operator must give the identity its role. No value is echoed.
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/configuration")
    assert ROLES[custody] in problem["detail"]
    assert sandbox.keyvault_url not in response.text and "127.0.0.1" not in response.text
    assert [k.key_id for k in app.context.accounts.list_keys()] == [key["keyId"]]
    assert health.status_code == 503
    assert ROLES[custody] in health.json()["keyStore"]["detail"]
    assert sandbox.keyvault_url not in health.text
    # The customer's unlink is done; the private key's deletion waits for the timer.
    assert unlinked.status_code == 204
    pending = app.context.accounts.get_key("local-dev", key["keyId"])
    assert pending is not None and pending.deleting
