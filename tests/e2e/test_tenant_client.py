"""The tenant client against the sandbox: answers Entra gives that the API's GUID rules keep the
routes from reaching, still mapped to the right check."""

from __future__ import annotations

from typing import Any

import pytest

from shared import verification
from shared.outbound import make_session
from shared.tenant_client import TenantClient


@pytest.fixture
def client(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> TenantClient:
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)
    return TenantClient(make_session(retries=1, backoff=0.1))


def test_a_tenant_identifier_that_is_not_valid_is_aadsts900023(
    client: TenantClient, sandbox: Any
) -> None:
    answer = client.metadata(sandbox.base_url, "not_a_tenant!")
    assert answer.document is None and not answer.transient
    assert answer.error_code == 900023
    check = verification.tenant_check(answer, "not_a_tenant!")
    assert (check.status, check.code) == ("fail", "AADSTS900023")


def test_a_verified_domain_resolves_like_the_guid(client: TenantClient, sandbox: Any) -> None:
    tenant = sandbox.admin.create_tenant("Fabrikam", domains=["fabrikam.onmicrosoft.com"])
    by_domain = client.metadata(sandbox.base_url, "fabrikam.onmicrosoft.com")
    by_guid = client.metadata(sandbox.base_url, tenant["tenantId"])
    assert by_domain.document is not None and by_guid.document is not None
    assert by_domain.document["token_endpoint"] == by_guid.document["token_endpoint"]


def test_metadata_is_fetched_once_and_served_to_msal_from_the_cache(
    client: TenantClient, sandbox: Any
) -> None:
    tenant = sandbox.admin.create_tenant("Once", domains=["once.onmicrosoft.com"])
    sandbox.admin.reset_requests()
    for _ in range(3):
        assert client.metadata(sandbox.base_url, tenant["tenantId"]).document is not None
    assert sandbox.admin.requests()["counts"].get("metadata", 0) == 1


def test_unreachable_endpoints_are_transient(client: TenantClient) -> None:
    answer = client.metadata("https://127.0.0.1:9", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    assert answer.transient
    graph = client.graph_get("https://127.0.0.1:9/v1.0/organization", "token")
    assert graph.transient and graph.status is None
