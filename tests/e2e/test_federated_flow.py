"""A federated credential end to end (API.md, "Federated credentials"), as a customer walks it,
on both account stores and under every custody of the issuer key: the key resource and its
`.json` download, the credential added to the app registration in the sandbox from that
download, Connect, a connected verification with its twelve checks, the assertion Entra
accepted, a timer run on a cached token, and unlink, after which the issuer never signs for
that subject again.

The helpers here (`FederatedCustomer`, `accepted`, `keyvault_signs`) serve the other
test_federated_*.py modules too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from shared.core.clouds import CLOUDS
from shared.signin import attempt
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import Customer, check, graph_requests, statuses

AUDIENCE = "api://AzureADTokenExchange"
CHECK_ORDER = [
    "tenant",
    "application",
    "certificate",
    "admin_consent",
    "directory_role",
    "directory_read",
    "access_reviews_read",
    "organization_match",
    "least_privilege",
    "certificate_expiry",
    "app_audience",
    "app_credentials",
]
KEY_FIELDS = {
    "keyId",
    "kind",
    "tenantId",
    "applicationId",
    "displayName",
    "federation",
    "thumbprint",
    "thumbprintSha256",
    "subject",
    "notBefore",
    "notAfter",
    "keySize",
    "certificatePem",
    "custody",
    "accountId",
    "createdAt",
    "expiresAt",
}
CERTIFICATE_FIELDS = (
    "thumbprint",
    "thumbprintSha256",
    "subject",
    "notBefore",
    "notAfter",
    "keySize",
    "certificatePem",
)


# --- the app on each store and custody ---------------------------------------------------------
def store_settings(request: pytest.FixtureRequest, store: str) -> dict[str, str]:
    if store == "sqlite":
        return {}
    azurite = request.getfixturevalue("azurite")
    return {
        "ACCOUNTS_STORAGE": azurite.connection_string,
        "ACCOUNTS_TABLE_NAME": "t" + uuid.uuid4().hex[:16],
    }


def custody_settings(sandbox: Any, custody: str) -> dict[str, str]:
    if custody == "local":
        return {}
    return {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": custody}


@pytest.fixture(params=["sqlite", "table"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["local", "vault-secret", "vault-key"])
def custody(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(
    request: pytest.FixtureRequest,
    sandboxed_app: Callable[..., RunningApp],
    sandbox: Any,
    store: str,
    custody: str,
) -> RunningApp:
    return sandboxed_app(
        {**store_settings(request, store), **custody_settings(sandbox, custody)},
        vault_credential=StaticCredential(),
    )


# --- a customer with a federated credential ----------------------------------------------------
@dataclass
class FederatedCustomer(Customer):
    """A customer whose app registration trusts the service's issuer instead of a certificate."""

    def register(self, **options: Any) -> FederatedCustomer:
        super().register(**options)
        return self

    def generate_federated(self, **extra: Any) -> dict[str, Any]:
        return self.generate_key(kind="federated", **extra)

    def download_json(self) -> dict[str, Any]:
        response = self.app.http.get(
            self.app.api(f"/keys/{self.key['keyId']}"), params={"format": "json"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def add_credential(self, **changes: Any) -> dict[str, Any]:
        """Add the downloaded `.json` to the app registration as `az ad app
        federated-credential create --parameters` would, with `changes` made by hand."""
        added: dict[str, Any] = self.admin.add_federated_credential(
            self.tenant_id, self.application_id, {**self.download_json(), **changes}
        )
        return added

    def federated_all_the_way(self, **register: Any) -> FederatedCustomer:
        self.register(**register)
        self.generate_federated()
        self.add_credential()
        self.connect()
        return self

    def stored_account(self, owner: str = "local-dev") -> Any:
        account = self.app.context.accounts.get_account(owner, self.account["id"])
        assert account is not None
        return account


def accepted(sandbox: Any) -> dict[str, Any] | None:
    """The last federated assertion the sandbox's Entra accepted, or None."""
    try:
        found: dict[str, Any] = sandbox.admin.last_federated_assertion()
    except Exception as error:  # the admin API answers 404 while none was accepted
        if "404" in str(error):
            return None
        raise
    return found


def keyvault_signs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The Key Vault `sign` requests in the sandbox's record."""
    return [
        r
        for r in record["value"]
        if r["target"] == "keyvault" and r["method"] == "POST" and r["path"].endswith("/sign")
    ]


def token_requests(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in record["value"] if r["target"] == "token"]


# --- the flow ----------------------------------------------------------------------------------
def created_as_api_md_says(customer: FederatedCustomer, custody: str) -> dict[str, Any]:
    app = customer.app
    body = {
        "kind": "federated",
        "tenantId": customer.tenant_id,
        "applicationId": customer.application_id,
        "displayName": "Contoso production",
    }
    response = app.http.post(app.api("/keys"), json=body)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"/api/keys/{key['keyId']}"
    assert set(key) == KEY_FIELDS
    assert key["kind"] == "federated" and key["custody"] == custody
    assert (key["tenantId"], key["applicationId"], key["displayName"]) == (
        customer.tenant_id,
        customer.application_id,
        "Contoso production",
    )
    assert key["accountId"] is None and key["expiresAt"] is not None
    for name in CERTIFICATE_FIELDS:
        assert key[name] is None, name
    federation = key["federation"]
    assert set(federation) == {"issuer", "subject", "audience", "name"}
    assert federation["issuer"] == app.context.settings.oidc_issuer == app.api("/oidc")
    assert federation["audience"] == AUDIENCE
    assert len(federation["subject"]) <= 600
    assert all(c.isalnum() or c in ":._-" for c in federation["subject"])
    assert key["keyId"] in federation["subject"]  # unique to this credential
    assert 3 <= len(federation["name"]) <= 120
    # The key resource reads back the same.
    again = app.http.get(app.api(f"/keys/{key['keyId']}"))
    assert again.status_code == 200 and again.json() == key
    customer.key = key
    return key


def downloaded_as_graph_takes_it(customer: FederatedCustomer) -> dict[str, Any]:
    app, key = customer.app, customer.key
    response = app.http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "json"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    federation = key["federation"]
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{federation["name"]}.json"'
    )
    body: dict[str, Any] = response.json()
    assert set(body) == {"name", "issuer", "subject", "audiences", "description"}
    assert body["name"] == federation["name"]
    assert body["issuer"] == federation["issuer"]
    assert body["subject"] == federation["subject"]
    assert body["audiences"] == [AUDIENCE]
    assert isinstance(body["description"], str) and 0 < len(body["description"]) <= 600
    return body


def assert_federated_account(account: dict[str, Any], key: dict[str, Any]) -> None:
    assert account["credential"] == "federated"
    assert account["keyId"] == key["keyId"]
    assert account["thumbprint"] is None and account["certificateNotAfter"] is None


def assert_connected_report(report: dict[str, Any], customer: FederatedCustomer) -> None:
    assert report["status"] == "connected", statuses(report)
    assert [c["id"] for c in report["checks"]] == CHECK_ORDER
    assert all(c["status"] == "pass" for c in report["checks"]), statuses(report)
    federation = customer.key["federation"]
    # The rows about the credential name it in their titles; none speaks of a certificate.
    for check_id in ("certificate", "certificate_expiry", "app_credentials"):
        row = check(report, check_id)
        assert "federated credential" in row["title"].lower(), row
        assert "certificate" not in f"{row['title']} {row['detail']}".lower(), row
    certificate = check(report, "certificate")
    assert federation["issuer"] in certificate["detail"]
    assert federation["subject"] in certificate["detail"]
    assert "does not expire" in check(report, "certificate_expiry")["detail"]
    listed = report["appRegistration"]["federatedCredentials"]
    assert listed == [
        {
            "name": federation["name"],
            "issuer": federation["issuer"],
            "subject": federation["subject"],
            "audiences": [AUDIENCE],
            "usedBy": "this-account",
        }
    ]


def assert_accepted_assertion(sandbox: Any, customer: FederatedCustomer) -> None:
    seen = accepted(sandbox)
    assert seen is not None
    federation = customer.key["federation"]
    header, claims = seen["header"], seen["claims"]
    assert header["alg"] == "RS256" and header["kid"] and "x5t" not in header
    assert set(header) <= {"alg", "kid", "typ"}
    published = customer.app.http.get(customer.app.api("/oidc/jwks")).json()["keys"]
    assert header["kid"] in [k["kid"] for k in published]
    assert set(claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}
    assert claims["iss"] == customer.app.context.settings.oidc_issuer == federation["issuer"]
    assert claims["sub"] == federation["subject"]
    assert claims["aud"] == AUDIENCE
    assert claims["nbf"] <= claims["iat"] < claims["exp"] <= claims["iat"] + 600
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert (seen["tenantId"], seen["appId"]) == (customer.tenant_id, customer.application_id)


def the_timer_on_a_cached_token(app: RunningApp, sandbox: Any) -> None:
    sandbox.admin.reset_requests()
    summary = health_check.run(app.context)
    record = sandbox.admin.requests()
    assert summary.checked == 1 and summary.by_status["connected"] == 1
    assert len(graph_requests(record)) >= 1
    assert record["counts"].get("graph", 0) == 1, record["counts"]
    assert record["counts"].get("token", 0) == 0 and record["counts"].get("metadata", 0) == 0
    assert keyvault_signs(record) == []


def never_signed_again(customer: FederatedCustomer, stored: Any, sandbox: Any) -> None:
    """After unlink, a sign-in with the credential's key id is refused by the app itself:
    no assertion is made and nothing reaches the sandbox's token endpoint."""
    app = customer.app
    before = accepted(sandbox)
    sandbox.admin.reset_requests()
    tried = attempt(
        app.context, stored, CLOUDS["global"], key_id=stored.key_id, thumbprint="", fresh=True
    )
    assert tried.answer is None and tried.key_failure == "missing"
    record = sandbox.admin.requests()
    assert token_requests(record) == [] and keyvault_signs(record) == []
    assert accepted(sandbox) == before
    # Nor can the key id be linked again: the credential's record is gone.
    relinked = app.http.post(
        app.api("/accounts"),
        json={
            "displayName": "Contoso again",
            "tenantId": customer.tenant_id,
            "applicationId": customer.application_id,
            "keyId": customer.key["keyId"],
        },
    )
    assert relinked.status_code in (400, 404), relinked.text
    assert app.http.get(app.api(f"/keys/{customer.key['keyId']}")).status_code == 404
    assert token_requests(sandbox.admin.requests()) == []


def test_a_federated_credential_all_the_way_and_back(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    customer = FederatedCustomer(app, sandbox).register()
    created_as_api_md_says(customer, custody)
    download = downloaded_as_graph_takes_it(customer)
    added = customer.admin.add_federated_credential(
        customer.tenant_id, customer.application_id, download
    )
    assert added["subject"] == download["subject"]

    account = customer.connect()
    assert_federated_account(account, customer.key)
    assert_federated_account(customer.current(), customer.key)
    linked_key = app.http.get(app.api(f"/keys/{customer.key['keyId']}")).json()
    assert linked_key["accountId"] == account["id"]

    sandbox.admin.reset_requests()
    report = customer.verify()
    assert_connected_report(report, customer)
    assert_accepted_assertion(sandbox, customer)
    signs = keyvault_signs(sandbox.admin.requests())
    assert len(signs) == (1 if custody == "vault-key" else 0)  # one sign per token request
    assert customer.current()["status"] == "connected"

    the_timer_on_a_cached_token(app, sandbox)

    stored = customer.stored_account()
    deleted = app.http.delete(app.api(f"/accounts/{account['id']}"))
    assert deleted.status_code == 204
    never_signed_again(customer, stored, sandbox)
