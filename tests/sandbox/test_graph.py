"""The Graph stand-in: bearer checks, and who may read the organization, reviews and roles."""

from __future__ import annotations

import time

import pytest
import requests

from localdev.sandbox import Sandbox
from tests.sandbox.tenant_setup import Credential, Linked, MsalFactory, token_for

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
ORGANIZATION = "/v1.0/organization"
REVIEWS = "/v1.0/identityGovernance/accessReviews/definitions?$top=1"


def member_of(app_id: str) -> str:
    return f"/v1.0/servicePrincipals(appId='{app_id}')/memberOf"


def call(sb: Sandbox, http: requests.Session, path: str, token: str) -> requests.Response:
    return http.get(f"{sb.base_url}{path}", headers={"Authorization": f"Bearer {token}"})


def graph_error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["innerError"]["request-id"]
    assert error["innerError"]["date"]
    message: str = error["message"]
    return message


def test_organization_lists_the_tenant(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    response = call(sb, http, ORGANIZATION, graph_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#organization")
    [organization] = body["value"]
    assert organization["id"] == linked.tenant_id
    assert organization["displayName"] == "Contoso"
    assert organization["verifiedDomains"] == [
        {
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": True,
            "isInitial": True,
            "name": "contoso.onmicrosoft.com",
            "type": "Managed",
        },
        {
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": False,
            "isInitial": False,
            "name": "contoso.com",
            "type": "Managed",
        },
    ]


def test_organization_needs_a_permission_or_a_reading_role(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, ["Security Reader"])
    token = token_for(msal_app, linked, credential)
    message = graph_error(call(sb, http, ORGANIZATION, token), 403, "Authorization_RequestDenied")
    assert message == "Insufficient privileges to complete the operation."

    sb.admin.set_permissions(linked.tenant_id, linked.app_id, ["Organization.Read.All"])
    token = token_for(msal_app, linked, credential)
    assert call(sb, http, ORGANIZATION, token).status_code == 200


def test_directory_role_counts_even_without_wids(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.update_tenant(linked.tenant_id, emit_wids=False)
    token = token_for(msal_app, linked, credential)
    assert call(sb, http, ORGANIZATION, token).status_code == 200


def test_role_removed_after_the_token_was_issued_applies_at_once(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, [])
    graph_error(call(sb, http, ORGANIZATION, graph_token), 403, "Authorization_RequestDenied")


def test_access_review_definitions_with_consent(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    response = call(sb, http, REVIEWS, graph_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["value"]) == 1
    assert body["value"][0]["id"]
    assert "$skip=1" in body["@odata.nextLink"]
    everything = call(sb, http, "/v1.0/identityGovernance/accessReviews/definitions", graph_token)
    assert len(everything.json()["value"]) == 2


def test_access_reviews_need_the_access_review_permission(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.set_permissions(linked.tenant_id, linked.app_id, ["Directory.Read.All"])
    token = token_for(msal_app, linked, credential)
    graph_error(call(sb, http, REVIEWS, token), 403, "Authorization_RequestDenied")


def test_unlicensed_tenant_answers_a_licence_code(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.update_tenant(linked.tenant_id, licensed=False)
    message = graph_error(call(sb, http, REVIEWS, graph_token), 403, "AadPremiumLicenseRequired")
    assert "P2" in message


def test_unlicensed_tenant_in_message_style(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    sb.admin.update_tenant(linked.tenant_id, licensed=False, license_error_style="message")
    message = graph_error(call(sb, http, REVIEWS, graph_token), 403, "Forbidden")
    assert "license" in message.lower()


def test_member_of_lists_directory_roles(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    response = call(sb, http, member_of(linked.app_id), graph_token)
    assert response.status_code == 200, response.text
    [role] = response.json()["value"]
    assert role["@odata.type"] == "#microsoft.graph.directoryRole"
    assert role["roleTemplateId"] == GLOBAL_READER
    assert role["displayName"] == "Global Reader"
    assert role["id"]
    cast = call(sb, http, member_of(linked.app_id) + "/microsoft.graph.directoryRole", graph_token)
    assert cast.json()["value"] == response.json()["value"]


def test_member_of_unknown_app_is_not_found(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    response = call(sb, http, member_of("11111111-2222-4333-8444-555555555555"), graph_token)
    graph_error(response, 404, "Request_ResourceNotFound")


def test_member_of_needs_a_reading_permission_or_role(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, [])
    token = token_for(msal_app, linked, credential)
    graph_error(call(sb, http, member_of(linked.app_id), token), 403, "Authorization_RequestDenied")
    sb.admin.set_permissions(linked.tenant_id, linked.app_id, ["Application.Read.All"])
    token = token_for(msal_app, linked, credential)
    response = call(sb, http, member_of(linked.app_id), token)
    assert response.status_code == 200
    assert response.json()["value"] == []


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0."],
)
def test_bad_bearer_is_invalid_authentication_token(
    sb: Sandbox, http: requests.Session, linked: Linked, token: str
) -> None:
    response = call(sb, http, ORGANIZATION, token)
    graph_error(response, 401, "InvalidAuthenticationToken")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_authorization_is_401(sb: Sandbox, http: requests.Session) -> None:
    graph_error(http.get(f"{sb.base_url}{ORGANIZATION}"), 401, "InvalidAuthenticationToken")


def test_expired_or_foreign_tokens_are_rejected(
    sb: Sandbox, http: requests.Session, linked: Linked
) -> None:
    now = int(time.time())
    claims = {
        "aud": "https://graph.microsoft.com",
        "tid": linked.tenant_id,
        "appid": linked.app_id,
        "roles": ["Directory.Read.All"],
        "iat": now - 7200,
        "exp": now - 3600,
    }
    expired = sb.token_signing_key.sign(claims)
    assert "expired" in graph_error(
        call(sb, http, ORGANIZATION, expired), 401, "InvalidAuthenticationToken"
    )
    wrong_audience = sb.token_signing_key.sign(
        {**claims, "aud": "https://vault.azure.net", "exp": now + 600}
    )
    assert "audience" in graph_error(
        call(sb, http, ORGANIZATION, wrong_audience), 401, "InvalidAuthenticationToken"
    )
    portal_signed = sb.portal_signing_key.sign({**claims, "exp": now + 600})
    graph_error(call(sb, http, ORGANIZATION, portal_signed), 401, "InvalidAuthenticationToken")
    still_good = sb.token_signing_key.sign({**claims, "exp": now + 600})
    assert call(sb, http, ORGANIZATION, still_good).status_code == 200


def test_unknown_resource_is_bad_request(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    graph_error(call(sb, http, "/v1.0/users", graph_token), 400, "BadRequest")
