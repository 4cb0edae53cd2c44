"""Faults, latency and the request record, as tests of the app's retries and caching use them."""

from __future__ import annotations

import time

import jwt
import requests

from localdev.sandbox import Sandbox
from tests.sandbox.tenant_setup import GRAPH_SCOPE, Credential, Linked, MsalFactory

ORGANIZATION = "/v1.0/organization"


def test_throttled_token_endpoint_then_success(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    sb.admin.add_fault("token", 429, retry_after=1, count=1)
    throttled = msal_app(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert throttled["error"] == "temporarily_unavailable"
    assert throttled["error_codes"] == [90055]
    # MSAL replays a 429 for Retry-After seconds on the same app object; a new one asks again.
    result = msal_app(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert "access_token" in result, result
    token_requests = [r for r in sb.admin.requests()["value"] if r["target"] == "token"]
    assert [(r["status"], r["error"]) for r in token_requests] == [
        (429, "AADSTS90055"),
        (200, None),
    ]


def test_graph_429_carries_retry_after_and_graph_shape(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.add_fault("graph", 429, retry_after=2, count=1)
    headers = {"Authorization": f"Bearer {graph_token}"}
    throttled = http.get(f"{sb.base_url}{ORGANIZATION}", headers=headers)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert http.get(f"{sb.base_url}{ORGANIZATION}", headers=headers).status_code == 200


def test_fault_matches_target_and_path(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    fault_id = sb.admin.add_fault("graph", 503, path="accessReviews")
    headers = {"Authorization": f"Bearer {graph_token}"}
    reviews = f"{sb.base_url}/v1.0/identityGovernance/accessReviews/definitions"
    for _ in range(3):
        answer = http.get(reviews, headers=headers)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "serviceNotAvailable"
    assert http.get(f"{sb.base_url}{ORGANIZATION}", headers=headers).status_code == 200
    [fault] = sb.admin.faults()
    assert fault["id"] == fault_id and fault["remaining"] is None
    sb.admin.delete_fault(fault_id)
    assert http.get(reviews, headers=headers).status_code == 200


def test_any_target_fault_answers_in_each_services_shape(
    sb: Sandbox, http: requests.Session, linked: Linked
) -> None:
    sb.admin.add_fault("any", 500, count=2)
    metadata = http.get(f"{sb.base_url}/{linked.tenant_id}/v2.0/.well-known/openid-configuration")
    assert metadata.status_code == 500 and metadata.json()["error_codes"] == [50000]
    vault = http.get(f"{sb.keyvault_url}/secrets", params={"api-version": "7.6"})
    assert vault.status_code == 500 and vault.json()["error"]["code"] == "InternalServerError"
    assert sb.admin.faults()[0]["remaining"] == 0
    again = http.get(f"{sb.base_url}/{linked.tenant_id}/v2.0/.well-known/openid-configuration")
    assert again.status_code == 200


def test_latency_applies_to_services_not_to_admin(
    sb: Sandbox, http: requests.Session, linked: Linked
) -> None:
    sb.admin.set_latency(300)
    started = time.monotonic()
    http.get(f"{sb.base_url}/{linked.tenant_id}/v2.0/.well-known/openid-configuration")
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    sb.admin.requests()
    assert time.monotonic() - started < 0.25
    sb.admin.set_latency(0)


def test_fault_with_latency_only_delays(
    sb: Sandbox, http: requests.Session, linked: Linked
) -> None:
    sb.admin.add_fault("metadata", latency_ms=300, count=1)
    started = time.monotonic()
    slow = http.get(f"{sb.base_url}/{linked.tenant_id}/v2.0/.well-known/openid-configuration")
    assert slow.status_code == 200
    assert time.monotonic() - started >= 0.3
    record = sb.admin.requests()["value"][-1]
    assert record["durationMs"] >= 300


def test_request_counts_by_target(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.reset_requests()
    app = msal_app(linked.tenant_id, linked.app_id, credential)
    token = app.acquire_token_for_client([GRAPH_SCOPE])["access_token"]
    app.acquire_token_for_client([GRAPH_SCOPE])  # served from MSAL's cache: no request
    http.get(f"{sb.base_url}{ORGANIZATION}", headers={"Authorization": f"Bearer {token}"})
    http.get(f"{sb.base_url}/portal/{linked.tenant_id}/discovery/v2.0/keys")
    http.get(f"{sb.base_url}/nothing/here")
    sb.admin.tenants()
    counts = sb.admin.requests()["counts"]
    assert counts == {
        "metadata": 1,
        "token": 1,
        "graph": 1,
        "keyvault": 0,
        "portal": 1,
        "other": 1,
    }
    sb.admin.reset_requests()
    assert sum(sb.admin.requests()["counts"].values()) == 0


def test_request_record_holds_no_token_or_assertion(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    app = msal_app(linked.tenant_id, linked.app_id, credential)
    token = app.acquire_token_for_client([GRAPH_SCOPE])["access_token"]
    assert jwt.get_unverified_header(token)["kid"]
    record = repr(sb.admin.requests())
    assert "eyJ" not in record
    assert token[-20:] not in record
