"""The OpenID issuer (API.md, "The issuer"): the discovery document and the JWKS, anonymous,
public members only, cacheable, and never a call to the key store per request.

The app runs with AUTH_MODE=entra and its keys in the sandbox's Key Vault (vault-key), so a
request that needed a caller would be refused and one that reached the vault would be counted.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from jwt.algorithms import RSAAlgorithm

from tests.conftest import SEEN, RunningApp
from tests.contract.test_key_store import StaticCredential

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "api://portal-backend"
DISCOVERY = "/oidc/.well-known/openid-configuration"
JWKS = "/oidc/jwks"
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> RunningApp:
    return sandboxed_app(
        {
            "AUTH_MODE": "entra",
            "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_ISSUER": sandbox.base_url + "/{tid}/v2.0",
            "AUTH_JWKS_URI": sandbox.base_url + "/portal/common/discovery/v2.0/keys",
            "KEY_VAULT_URL": sandbox.keyvault_url,
            "KEY_CUSTODY": "vault-key",
        },
        vault_credential=StaticCredential(),
    )


def owner_headers(sandbox: Any) -> dict[str, str]:
    token: str = sandbox.admin.mint_portal_token(str(uuid.uuid4()), AUDIENCE)
    SEEN.secrets.add(token)
    return {"Authorization": f"Bearer {token}"}


def federated_key(app: RunningApp, sandbox: Any) -> dict[str, Any]:
    """A federated credential, as a customer makes one: the app's issuer key then exists."""
    body = {
        "kind": "federated",
        "tenantId": str(uuid.uuid4()),
        "applicationId": str(uuid.uuid4()),
        "displayName": "Contoso",
    }
    created = app.http.post(app.api("/keys"), json=body, headers=owner_headers(sandbox))
    assert created.status_code == 201, created.text
    key: dict[str, Any] = created.json()
    return key


def vault_requests(sandbox: Any) -> int:
    return int(sandbox.admin.requests()["counts"].get("keyvault", 0))


def assert_cacheable_json(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    cache = re.fullmatch(r"public, max-age=(\d+)", response.headers["Cache-Control"])
    assert cache, response.headers["Cache-Control"]
    assert 0 < int(cache.group(1)) <= 3600


def test_discovery_names_the_hosts_own_issuer_exactly_as_api_md_gives_it(app: RunningApp) -> None:
    issuer = f"{app.url}/api/oidc"  # unset OIDC_ISSUER: the host's own URL, as under make run
    response = requests.get(app.api(DISCOVERY), timeout=10)
    assert_cacheable_json(response)
    assert response.json() == {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    # Where Entra goes next: the JWKS, at the URL the document names.
    assert_cacheable_json(requests.get(response.json()["jwks_uri"], timeout=10))


def test_discovery_names_a_pinned_issuer_as_set(start_app: Callable[..., RunningApp]) -> None:
    pinned = "https://links.contoso.example/tenant-links/oidc"  # a custom domain in front
    app = start_app({"OIDC_ISSUER": pinned})
    document = app.http.get(app.api(DISCOVERY)).json()
    assert document["issuer"] == pinned and document["jwks_uri"] == f"{pinned}/jwks"


def test_jwks_is_empty_until_the_first_federated_credential(app: RunningApp) -> None:
    response = app.http.get(app.api(JWKS))
    assert_cacheable_json(response)
    assert response.json() == {"keys": []}


def test_jwks_holds_the_issuer_keys_public_members_only(app: RunningApp, sandbox: Any) -> None:
    federated_key(app, sandbox)
    response = app.http.get(app.api(JWKS))
    assert_cacheable_json(response)
    keys = response.json()["keys"]
    assert 1 <= len(keys) <= 3
    for jwk in keys:
        assert set(jwk) == {"kty", "use", "alg", "kid", "n", "e"}, sorted(jwk)
        assert (jwk["kty"], jwk["use"], jwk["alg"]) == ("RSA", "sig", "RS256")
        assert RSAAlgorithm.from_jwk(jwk).key_size >= 2048  # a usable public key
    assert len({jwk["kid"] for jwk in keys}) == len(keys)
    for member in PRIVATE_MEMBERS:
        assert f'"{member}"' not in response.text


def test_head_answers_the_headers_without_a_body(app: RunningApp, sandbox: Any) -> None:
    federated_key(app, sandbox)
    for path in (DISCOVERY, JWKS):
        got = app.http.get(app.api(path))
        head = app.http.head(app.api(path))
        assert_cacheable_json(head)
        assert head.content == b""
        assert head.headers["Cache-Control"] == got.headers["Cache-Control"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_any_other_method_is_a_405_problem(app: RunningApp, method: str, path: str) -> None:
    response = app.http.request(method, app.api(path), json={})
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.json()["status"] == 405


@pytest.mark.parametrize("path", ["/oidc", "/oidc/keys", "/oidc/JWKS", "/oidc/jwks/extra"])
def test_any_other_document_under_the_issuer_is_a_404_problem(app: RunningApp, path: str) -> None:
    response = app.http.get(app.api(path))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_no_caller_is_needed_even_under_entra(app: RunningApp, sandbox: Any) -> None:
    assert app.context.settings.auth.mode == "entra"
    assert app.http.get(app.api("/keys/x")).status_code == 401  # the routes that need one do
    federated_key(app, sandbox)
    for path in (DISCOVERY, JWKS):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
            assert app.http.get(app.api(path), headers=headers).status_code == 200, headers


def test_the_documents_cost_the_key_store_nothing_per_call(app: RunningApp, sandbox: Any) -> None:
    federated_key(app, sandbox)
    published = app.http.get(app.api(JWKS)).json()
    sandbox.admin.reset_requests()
    for _ in range(25):
        assert app.http.get(app.api(JWKS)).json() == published
        assert app.http.head(app.api(JWKS)).status_code == 200
        assert app.http.get(app.api(DISCOVERY)).status_code == 200
    assert vault_requests(sandbox) == 0
