"""The Entra stand-in, driven through real MSAL where the app would use MSAL."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from localdev.sandbox import Sandbox
from tests.sandbox.tenant_setup import (
    GRAPH_SCOPE,
    Credential,
    Linked,
    MsalFactory,
    make_credential,
)

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
DEFAULT_WIDS = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"
PostAssertion = Callable[..., requests.Response]


def metadata(http: requests.Session, sb: Sandbox, tenant: str) -> requests.Response:
    return http.get(f"{sb.base_url}/{tenant}/v2.0/.well-known/openid-configuration")


def assert_entra_error(response: requests.Response, status: int, error: str, code: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    for field in ("timestamp", "trace_id", "correlation_id"):
        assert body[field]
    description: str = body["error_description"]
    return description


# --- metadata ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cloud", "instance", "graph_host", "scope", "sub_scope"),
    [
        ("global", "microsoftonline.com", "graph.microsoft.com", "NA", None),
        ("usgov", "microsoftonline.us", "graph.microsoft.us", "USGov", "DODCON"),
        ("usgovdod", "microsoftonline.us", "dod-graph.microsoft.us", "USGov", "DOD"),
        ("china", "partner.microsoftonline.cn", "microsoftgraph.chinacloudapi.cn", "AS", None),
    ],
)
def test_metadata_describes_the_tenant_cloud(
    sb: Sandbox,
    http: requests.Session,
    cloud: str,
    instance: str,
    graph_host: str,
    scope: str,
    sub_scope: str | None,
) -> None:
    tid = sb.admin.create_tenant("Fabrikam", cloud=cloud, domains=["fabrikam.example"])["tenantId"]
    for identifier in (tid, "fabrikam.example", "FABRIKAM.example"):
        response = metadata(http, sb, identifier)
        assert response.status_code == 200
        document = response.json()
        assert document["token_endpoint"] == f"{sb.base_url}/{tid}/oauth2/v2.0/token"
        assert document["issuer"] == f"{sb.base_url}/{tid}/v2.0"
        assert document["jwks_uri"] == f"{sb.base_url}/{tid}/discovery/v2.0/keys"
        assert document["cloud_instance_name"] == instance
        assert document["msgraph_host"] == graph_host
        assert document["tenant_region_scope"] == scope
        assert document.get("tenant_region_sub_scope") == sub_scope


def test_unknown_tenant_is_aadsts90002(sb: Sandbox, http: requests.Session) -> None:
    sb.admin.create_tenant("Contoso", domains=["contoso.com"])
    for identifier in ("6f1c3a34-5d4c-4a8b-9a0e-0a8f2e8c6c11", "nowhere.example", "common"):
        description = assert_entra_error(
            metadata(http, sb, identifier), 400, "invalid_tenant", 90002
        )
        assert f"Tenant '{identifier}' not found" in description


@pytest.mark.parametrize("identifier", ["not a tenant", "contoso_corp", "-bad-.com"])
def test_malformed_tenant_is_aadsts900023(
    sb: Sandbox, http: requests.Session, identifier: str
) -> None:
    description = assert_entra_error(metadata(http, sb, identifier), 400, "invalid_request", 900023)
    assert "neither a valid DNS name, nor a valid external domain" in description


def test_msal_cannot_start_for_an_unknown_tenant(msal_app: MsalFactory, sb: Sandbox) -> None:
    with pytest.raises(ValueError):
        msal_app("nowhere.example", "0d1f5b9e-5c33-4f1e-9a55-8f1e1b1f0e11", make_credential())


def test_correlation_id_echoes_client_request_id(sb: Sandbox, http: requests.Session) -> None:
    response = http.get(
        f"{sb.base_url}/nowhere.example/v2.0/.well-known/openid-configuration",
        headers={"client-request-id": "c0ffee00-0000-4000-8000-000000000001"},
    )
    assert response.json()["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"


def test_instance_discovery_answers(sb: Sandbox, http: requests.Session) -> None:
    response = http.get(
        f"{sb.base_url}/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": "https://x/contoso.com/oauth2/v2.0/authorize",
        },
    )
    assert response.status_code == 200
    assert response.json()["tenant_discovery_endpoint"] == (
        f"{sb.base_url}/contoso.com/v2.0/.well-known/openid-configuration"
    )


# --- tokens: success ---------------------------------------------------------------------------
def verify_with_jwks(sb: Sandbox, http: requests.Session, tid: str, token: str) -> dict:
    jwks_uri = metadata(http, sb, tid).json()["jwks_uri"]
    keys = http.get(jwks_uri).json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key
    claims: dict = jwt.decode(
        token, key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    return claims


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_msal_gets_an_app_only_token(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
    algorithm: str,
) -> None:
    before = int(time.time())
    app = msal_app(linked.tenant_id, linked.app_id, credential, algorithm=algorithm)
    result = app.acquire_token_for_client([GRAPH_SCOPE])
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599

    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{linked.tenant_id}/"
    assert claims["tid"] == linked.tenant_id
    assert claims["oid"] == linked.service_principal_id
    assert claims["appid"] == linked.app_id
    assert claims["appidacr"] == "2"
    assert claims["idtyp"] == "app"
    assert claims["ver"] == "1.0"
    assert claims["roles"] == ["AccessReview.Read.All"]
    assert claims["wids"] == [GLOBAL_READER, DEFAULT_WIDS]
    assert before <= claims["iat"] <= claims["nbf"] + 1
    assert claims["exp"] - claims["iat"] == 3599
    assert verify_with_jwks(sb, http, linked.tenant_id, result["access_token"]) == claims

    token_requests = [r for r in sb.admin.requests()["value"] if r["target"] == "token"]
    assert [r["status"] for r in token_requests] == [200]


def test_tenant_may_be_named_by_domain(
    msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    result = msal_app(linked.domain, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert "access_token" in result, result


def test_assertion_audience_may_name_the_domain(
    sb: Sandbox, post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    response = post_assertion(
        linked.domain,
        linked.app_id,
        credential,
        claims={"aud": f"{sb.base_url}/{linked.domain}/oauth2/v2.0/token"},
    )
    assert response.status_code == 200, response.text


def test_x5t_without_padding_is_accepted(
    post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    response = post_assertion(
        linked.tenant_id, linked.app_id, credential, headers={"x5t": credential.x5t(padded=False)}
    )
    assert response.status_code == 200, response.text


def test_token_without_consent_or_roles_omits_the_claims(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    sb.admin.set_permissions(linked.tenant_id, linked.app_id, [])
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, [])
    result = msal_app(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert "roles" not in claims
    assert claims["wids"] == [DEFAULT_WIDS]


def test_emit_wids_false_leaves_wids_out(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    sb.admin.update_tenant(linked.tenant_id, emit_wids=False)
    result = msal_app(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert "wids" not in claims
    assert claims["roles"] == ["AccessReview.Read.All"]


def test_usgov_tenant_issues_tokens_for_its_graph(
    sb: Sandbox, msal_app: MsalFactory, credential: Credential
) -> None:
    tid = sb.admin.create_tenant("Gov", cloud="usgov")["tenantId"]
    app_id = sb.admin.create_application(tid, "Reader")["appId"]
    sb.admin.upload_certificate(tid, app_id, credential.cert_der)
    app = msal_app(tid, app_id, credential)
    result = app.acquire_token_for_client(["https://graph.microsoft.us/.default"])
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.us"
    wrong_cloud = msal_app(tid, app_id, credential).acquire_token_for_client([GRAPH_SCOPE])
    assert wrong_cloud["error"] == "invalid_resource"
    assert wrong_cloud["error_codes"] == [500011]


# --- tokens: application errors ----------------------------------------------------------------
def test_unknown_application_is_aadsts700016(
    msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    result = msal_app(
        linked.tenant_id, "3f0e4c1d-2b6a-4e8f-9d1c-5a7b9e0f1a2b", credential
    ).acquire_token_for_client([GRAPH_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


def test_application_without_service_principal_is_aadsts7000229(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    app = sb.admin.update_application(linked.tenant_id, linked.app_id, service_principal=False)
    assert app["permissions"] == [] and app["directoryRoles"] == []
    result = msal_app(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000229]
    assert linked.app_id in result["error_description"]


def test_disabled_application_is_aadsts7000112(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    sb.admin.update_application(linked.tenant_id, linked.app_id, enabled=False)
    result = msal_app(linked.tenant_id, linked.app_id, credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [7000112]


# --- tokens: credential errors -----------------------------------------------------------------
def test_certificate_not_uploaded_is_aadsts700027_with_the_thumbprint(
    msal_app: MsalFactory, linked: Linked, other_credential: Credential
) -> None:
    result = msal_app(linked.tenant_id, linked.app_id, other_credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert "The key was not found." in result["error_description"]
    assert other_credential.sha1_hex.upper() in result["error_description"]


def test_ps256_with_unknown_certificate_quotes_its_sha256(
    msal_app: MsalFactory, linked: Linked, other_credential: Credential
) -> None:
    app = msal_app(linked.tenant_id, linked.app_id, other_credential, algorithm="PS256")
    result = app.acquire_token_for_client([GRAPH_SCOPE])
    assert result["error_codes"] == [700027]
    assert other_credential.sha256.hex().upper() in result["error_description"]


def test_wrong_signature_is_aadsts700027(
    post_assertion: PostAssertion,
    linked: Linked,
    credential: Credential,
    other_credential: Credential,
) -> None:
    # Signed with another key, but claiming the uploaded certificate's thumbprint.
    impostor = Credential(other_credential.key, credential.certificate)
    response = post_assertion(linked.tenant_id, linked.app_id, impostor)
    description = assert_entra_error(response, 401, "invalid_client", 700027)
    assert "did not match the expected signature value" in description
    assert credential.sha1_hex.upper() in description


def test_expired_certificate_is_aadsts700027(
    sb: Sandbox,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
    expired_credential: Credential,
) -> None:
    sb.admin.delete_certificate(linked.tenant_id, linked.app_id, credential.sha1_hex)
    sb.admin.upload_certificate(linked.tenant_id, linked.app_id, expired_credential.cert_pem)
    result = msal_app(linked.tenant_id, linked.app_id, expired_credential).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert result["error_codes"] == [700027]
    assert "The key used is expired." in result["error_description"]


def test_missing_assertion_is_invalid_client(
    sb: Sandbox, http: requests.Session, linked: Linked
) -> None:
    response = http.post(
        f"{sb.base_url}/{linked.tenant_id}/oauth2/v2.0/token",
        data={
            "client_id": linked.app_id,
            "scope": GRAPH_SCOPE,
            "grant_type": "client_credentials",
        },
    )
    assert_entra_error(response, 401, "invalid_client", 7000216)


def test_garbled_assertion_is_aadsts50027(
    post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    response = post_assertion(
        linked.tenant_id, linked.app_id, credential, assertion="not.a-jwt.at-all"
    )
    assert_entra_error(response, 400, "invalid_client", 50027)


def test_expired_assertion_is_aadsts700024(
    post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    past = int(time.time()) - 3600
    response = post_assertion(
        linked.tenant_id, linked.app_id, credential, claims={"iat": past - 600, "exp": past}
    )
    description = assert_entra_error(response, 401, "invalid_client", 700024)
    assert "not within its valid time range" in description


def test_assertion_from_the_future_is_aadsts700024(
    post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    future = int(time.time()) + 3600
    response = post_assertion(
        linked.tenant_id, linked.app_id, credential, claims={"nbf": future, "exp": future + 600}
    )
    assert_entra_error(response, 401, "invalid_client", 700024)


def test_clock_skew_of_a_few_minutes_is_tolerated(
    post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    now = int(time.time())
    response = post_assertion(
        linked.tenant_id, linked.app_id, credential, claims={"nbf": now + 120, "exp": now - 120}
    )
    assert response.status_code == 200, response.text


def test_wrong_audience_is_aadsts50012(
    sb: Sandbox, post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    response = post_assertion(
        linked.tenant_id,
        linked.app_id,
        credential,
        claims={"aud": "https://login.microsoftonline.com/common/oauth2/v2.0/token"},
    )
    description = assert_entra_error(response, 401, "invalid_client", 50012)
    assert "audience" in description


@pytest.mark.parametrize("claim", ["iss", "sub"])
def test_issuer_or_subject_not_the_client_is_aadsts700021(
    post_assertion: PostAssertion, linked: Linked, credential: Credential, claim: str
) -> None:
    response = post_assertion(
        linked.tenant_id,
        linked.app_id,
        credential,
        claims={claim: "7d1e7c2a-0000-4000-8000-000000000000"},
    )
    assert_entra_error(response, 401, "invalid_client", 700021)


def test_assertion_without_thumbprint_is_aadsts700027(
    post_assertion: PostAssertion, linked: Linked, credential: Credential
) -> None:
    response = post_assertion(linked.tenant_id, linked.app_id, credential, headers={"x5t": None})
    assert_entra_error(response, 401, "invalid_client", 700027)


@pytest.mark.parametrize(
    ("scope", "error", "code"),
    [
        ("https://management.azure.com/.default", "invalid_resource", 500011),
        ("https://graph.microsoft.us/.default", "invalid_resource", 500011),
        ("https://graph.microsoft.com/User.Read", "invalid_scope", 1002012),
    ],
)
def test_scope_must_be_this_clouds_graph_default(
    post_assertion: PostAssertion,
    linked: Linked,
    credential: Credential,
    scope: str,
    error: str,
    code: int,
) -> None:
    response = post_assertion(linked.tenant_id, linked.app_id, credential, scope=scope)
    assert_entra_error(response, 400, error, code)


def test_error_bodies_never_hold_the_assertion(
    post_assertion: PostAssertion, linked: Linked, other_credential: Credential
) -> None:
    response = post_assertion(linked.tenant_id, linked.app_id, other_credential)
    assert response.status_code == 401
    signature = response.request.body.split("client_assertion=")[1].split(".")[-1]
    assert signature[:20] not in response.text
    assert "eyJ" not in response.text


def test_certificate_not_yet_valid_is_aadsts700027(
    sb: Sandbox, msal_app: MsalFactory, linked: Linked, credential: Credential
) -> None:
    future = make_credential(
        datetime.now(UTC) + timedelta(days=1),
        datetime.now(UTC) + timedelta(days=400),
        key=credential.key,
    )
    sb.admin.delete_certificate(linked.tenant_id, linked.app_id, credential.sha1_hex)
    sb.admin.upload_certificate(linked.tenant_id, linked.app_id, future.cert_pem)
    result = msal_app(linked.tenant_id, linked.app_id, future).acquire_token_for_client(
        [GRAPH_SCOPE]
    )
    assert result["error_codes"] == [700027]
    assert "not yet valid" in result["error_description"]
