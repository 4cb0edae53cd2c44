"""The application object in the sandbox's Graph: its JSON, `$select`, who may read it."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
import requests
from cryptography.hazmat.primitives import hashes

from localdev.sandbox import Sandbox
from localdev.sandbox.admin_client import SandboxAdminError
from tests.sandbox.tenant_setup import Credential, Linked, MsalFactory, token_for

SELECT = "$select=id,signInAudience,keyCredentials,passwordCredentials"


def by_app_id(app_id: str, query: str = SELECT) -> str:
    return f"/v1.0/applications(appId='{app_id}')" + (f"?{query}" if query else "")


def get(sb: Sandbox, http: requests.Session, path: str, token: str) -> requests.Response:
    return http.get(f"{sb.base_url}{path}", headers={"Authorization": f"Bearer {token}"})


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_selected_properties_only_with_credentials_as_graph_shows_them(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str, credential: Credential
) -> None:
    secret = sb.admin.add_password(
        linked.tenant_id, linked.app_id, "CI secret", end_date_time="2030-01-01T00:00:00Z"
    )
    admin_app = sb.admin.get_application(linked.tenant_id, linked.app_id)

    response = get(sb, http, by_app_id(linked.app_id), graph_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "@odata.context",
        "id",
        "signInAudience",
        "keyCredentials",
        "passwordCredentials",
    }
    assert body["@odata.context"].endswith(
        "$metadata#applications(id,signInAudience,keyCredentials,passwordCredentials)/$entity"
    )
    assert body["id"] == admin_app["objectId"]
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["id"] not in (linked.app_id, linked.service_principal_id)
    assert body["signInAudience"] == "AzureADMyOrg"

    [key] = body["keyCredentials"]
    sha1 = credential.certificate.fingerprint(hashes.SHA1())  # noqa: S303 - the thumbprint
    assert base64.b64decode(key["customKeyIdentifier"]) == sha1
    assert key["displayName"] == "CN=sandbox-test"
    assert key["startDateTime"] == iso(credential.certificate.not_valid_before_utc)
    assert key["endDateTime"] == iso(credential.certificate.not_valid_after_utc)
    assert key["keyId"] == admin_app["certificates"][0]["keyId"]
    assert (key["type"], key["usage"]) == ("AsymmetricX509Cert", "Verify")
    assert base64.b64decode(key["key"]) == credential.cert_der  # only on a $select read

    [password] = body["passwordCredentials"]
    assert password["keyId"] == secret["keyId"]
    assert password["hint"] == secret["hint"] and len(password["hint"]) == 3
    assert password["displayName"] == "CI secret"
    assert password["endDateTime"] == "2030-01-01T00:00:00Z"
    assert password["secretText"] is None


def test_by_object_id_without_select_answers_every_property(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    object_id = sb.admin.get_application(linked.tenant_id, linked.app_id)["objectId"]
    response = get(sb, http, f"/v1.0/applications/{object_id}", graph_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#applications/$entity")
    assert body["appId"] == linked.app_id and body["id"] == object_id
    assert body["displayName"] == "Portal reader"
    assert body["keyCredentials"][0]["key"] is None


def test_an_unknown_selected_property_is_a_bad_request(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    response = get(sb, http, by_app_id(linked.app_id, "$select=id,secretText"), graph_token)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert "'secretText'" in response.json()["error"]["message"]


def test_an_unknown_application_is_not_found(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    for path in (by_app_id(str(uuid.uuid4())), f"/v1.0/applications/{uuid.uuid4()}"):
        response = get(sb, http, path, graph_token)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "Request_ResourceNotFound"


def test_reading_needs_an_application_permission_or_a_directory_reading_role(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
) -> None:
    sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, ["Security Reader"])
    token = token_for(msal_app, linked, credential)
    denied = get(sb, http, by_app_id(linked.app_id), token)
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation.",
        "innerError": denied.json()["error"]["innerError"],
    }
    sb.admin.set_permissions(
        linked.tenant_id, linked.app_id, ["AccessReview.Read.All", "Application.Read.All"]
    )
    token = token_for(msal_app, linked, credential)
    assert get(sb, http, by_app_id(linked.app_id), token).status_code == 200


def test_a_tenant_can_make_the_application_unreadable_whatever_the_role(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    assert get(sb, http, by_app_id(linked.app_id), graph_token).status_code == 200
    tenant = sb.admin.update_tenant(linked.tenant_id, application_readable=False)
    assert tenant["applicationReadable"] is False
    denied = get(sb, http, by_app_id(linked.app_id), graph_token)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    # The other reads of a verification are unaffected.
    assert get(sb, http, "/v1.0/organization", graph_token).status_code == 200


def test_sign_in_audience_is_set_through_the_admin_api(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    app = sb.admin.update_application(
        linked.tenant_id, linked.app_id, sign_in_audience="AzureADMultipleOrgs"
    )
    assert app["signInAudience"] == "AzureADMultipleOrgs"
    body = get(sb, http, by_app_id(linked.app_id), graph_token).json()
    assert body["signInAudience"] == "AzureADMultipleOrgs"
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.update_application(linked.tenant_id, linked.app_id, sign_in_audience="Anyone")
    assert refused.value.status == 400


def test_expired_certificates_can_be_uploaded_and_pile_up(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    expired_credential: Credential,
) -> None:
    uploaded = sb.admin.upload_certificate(
        linked.tenant_id, linked.app_id, expired_credential.cert_pem
    )
    assert uploaded["notAfter"] < iso(datetime.now(UTC))
    keys = get(sb, http, by_app_id(linked.app_id), graph_token).json()["keyCredentials"]
    assert len(keys) == 2
    ends = sorted(k["endDateTime"] for k in keys)
    assert ends[0] == iso(expired_credential.certificate.not_valid_after_utc)


def test_client_secrets_are_added_and_removed_without_any_secret_kept(
    sb: Sandbox, http: requests.Session, linked: Linked, graph_token: str
) -> None:
    secret = sb.admin.add_password(linked.tenant_id, linked.app_id, "old secret")
    assert set(secret) == {
        "customKeyIdentifier",
        "displayName",
        "endDateTime",
        "hint",
        "keyId",
        "startDateTime",
    }
    listed = sb.admin.get_application(linked.tenant_id, linked.app_id)["passwordCredentials"]
    assert [p["keyId"] for p in listed] == [secret["keyId"]]
    sb.admin.delete_password(linked.tenant_id, linked.app_id, secret["keyId"])
    body = get(sb, http, by_app_id(linked.app_id), graph_token).json()
    assert body["passwordCredentials"] == []
    with pytest.raises(SandboxAdminError) as missing:
        sb.admin.delete_password(linked.tenant_id, linked.app_id, secret["keyId"])
    assert missing.value.status == 404
    with pytest.raises(SandboxAdminError) as bad_date:
        sb.admin.add_password(linked.tenant_id, linked.app_id, end_date_time="next year")
    assert bad_date.value.status == 400


def test_tenant_options_are_shown_and_checked(sb: Sandbox, linked: Linked) -> None:
    tenant = sb.admin.get_tenant(linked.tenant_id)
    assert tenant["applicationReadable"] is True
    assert tenant["maxCertificateLifetimeDays"] is None
    assert tenant["certificatePropagationSeconds"] == 0
    for bad in (-1, 10**6):
        with pytest.raises(SandboxAdminError) as refused:
            sb.admin.update_tenant(linked.tenant_id, certificate_propagation_seconds=bad)
        assert refused.value.status == 400
    with pytest.raises(SandboxAdminError) as refused:
        sb.admin.set_certificate_policy(linked.tenant_id, 0)
    assert refused.value.status == 400
