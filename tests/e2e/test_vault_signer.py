"""Under `vault-key` custody the app checks what Key Vault's `sign` answers before it uses it
(issue 18 item 7): a signature of the wrong length, or one made by another key, never becomes a
certificate (POST /api/keys is a 503 that leaves nothing behind) nor a client assertion (the
verification's `certificate` check is `error`, retryable, as for any key store failure, and no
assertion reaches Entra). The sandbox's Key Vault answers such signatures on demand
(`set_keyvault_sign_fault`). On both account stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import TOKEN_CHECKS, Customer, check

FAULTS = ["short", "other-key"]
BODY = {
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "applicationId": "11111111-2222-3333-4444-555555555555",
    "displayName": "Prod",
}


@pytest.fixture(params=["sqlite", "table"])
def app(
    request: pytest.FixtureRequest, sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> Iterator[RunningApp]:
    env = {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": "vault-key"}
    if request.param == "table":
        azurite = request.getfixturevalue("azurite")
        env["ACCOUNTS_STORAGE"] = azurite.connection_string
        env["ACCOUNTS_TABLE_NAME"] = "t" + uuid.uuid4().hex[:16]
    yield sandboxed_app(env, vault_credential=StaticCredential())
    sandbox.admin.clear_faults()


@pytest.mark.parametrize("fault", FAULTS)
def test_a_wrong_signature_from_the_vault_is_a_503_that_stores_nothing(
    app: RunningApp, sandbox: Any, fault: str
) -> None:
    sandbox.admin.set_keyvault_sign_fault(fault)
    response = app.http.post(app.api("/keys"), json=BODY)
    assert response.status_code == 503, response.text  # not a 201 with a broken certificate
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert "certificate" not in response.json() and "certificatePem" not in response.text
    # Nothing half-written: no key record, and the vault key made for it is deleted again.
    assert list(app.context.accounts.list_keys()) == []
    vault = sandbox.admin.keyvault_keys()
    assert vault["keys"] == [] and len(vault["deletedKeys"]) == 1
    # The vault signing right again, the same request succeeds.
    sandbox.admin.set_keyvault_sign_fault(None)
    assert app.http.post(app.api("/keys"), json=BODY).status_code == 201


@pytest.mark.parametrize("fault", FAULTS)
def test_a_wrong_signature_for_an_assertion_is_a_key_store_error_not_a_bad_assertion(
    app: RunningApp, sandbox: Any, fault: str
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    sandbox.admin.reset_requests()
    sandbox.admin.set_keyvault_sign_fault(fault)
    report = customer.verify()  # a customer's verification always asks for a fresh token
    certificate = check(report, "certificate")
    assert certificate["status"] == "error" and certificate["retryable"] is True
    assert all(check(report, name)["status"] == "skipped" for name in TOKEN_CHECKS)
    assert report["status"] == "error"
    # The bad assertion was never sent: Entra saw no token request (nor refused one, AADSTS50013).
    assert sandbox.admin.requests()["counts"].get("token", 0) == 0
    assert customer.current()["status"] == "connected"  # an `error` keeps the account's status
