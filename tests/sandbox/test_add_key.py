"""Self-rotation in the sandbox: addKey/removeKey with real proofs, the policy, propagation."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests

from localdev.sandbox import Sandbox
from localdev.sandbox.admin_client import SandboxAdminError
from tests.sandbox.tenant_setup import Credential, Linked, MsalFactory, make_credential, token_for

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
PostAssertion = Callable[..., requests.Response]


def object_id_of(sb: Sandbox, linked: Linked) -> str:
    object_id: str = sb.admin.get_application(linked.tenant_id, linked.app_id)["objectId"]
    return object_id


def make_proof(
    signer: Credential,
    issuer: str,
    *,
    audience: str = PROOF_AUDIENCE,
    lifetime: int = 600,
    not_before: int | None = None,
    algorithm: str = "RS256",
    claims: dict[str, Any] | None = None,
) -> str:
    nbf = int(time.time()) if not_before is None else not_before
    payload: dict[str, Any] = {"aud": audience, "iss": issuer, "nbf": nbf, "exp": nbf + lifetime}
    payload.update(claims or {})
    payload = {k: v for k, v in payload.items() if v is not None}
    if algorithm == "PS256":
        digest = base64.urlsafe_b64encode(signer.sha256).decode()
        headers = {"x5t#S256": digest}
    else:
        headers = {"x5t": signer.x5t()}
    return jwt.encode(payload, signer.key, algorithm=algorithm, headers=headers)


def add_key_body(new: Credential, proof: str | None) -> dict[str, Any]:
    return {
        "keyCredential": {
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": base64.b64encode(new.cert_der).decode(),
        },
        "passwordCredential": None,
        "proof": proof,
    }


def post(
    sb: Sandbox, http: requests.Session, path: str, token: str, body: dict[str, Any]
) -> requests.Response:
    return http.post(
        f"{sb.base_url}/v1.0/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def add_key(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    token: str,
    new: Credential,
    proof: str | None,
) -> requests.Response:
    path = f"applications/{object_id_of(sb, linked)}/addKey"
    return post(sb, http, path, token, add_key_body(new, proof))


def proof_refused(response: requests.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "Authentication_MissingOrMalformed"
    reason: str = response.headers["x-sandbox-reason"]
    return reason


def graph_keys(sb: Sandbox, http: requests.Session, linked: Linked, token: str) -> list[str]:
    response = http.get(
        f"{sb.base_url}/v1.0/applications(appId='{linked.app_id}')?$select=keyCredentials",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return [key["customKeyIdentifier"] for key in response.json()["keyCredentials"]]


def custom_key_identifier(credential: Credential) -> str:
    return base64.b64encode(bytes.fromhex(credential.sha1_hex)).decode()


@pytest.fixture(scope="module")
def new_credential() -> Credential:
    return make_credential()


def test_add_key_with_a_valid_proof_adds_the_certificate(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    new_credential: Credential,
    post_assertion: PostAssertion,
) -> None:
    proof = make_proof(credential, object_id_of(sb, linked))
    response = add_key(sb, http, linked, graph_token, new_credential, proof)
    assert response.status_code == 200, response.text
    added = response.json()
    assert added["@odata.context"].endswith("$metadata#microsoft.graph.keyCredential")
    assert added["customKeyIdentifier"] == custom_key_identifier(new_credential)
    assert (added["type"], added["usage"], added["key"]) == ("AsymmetricX509Cert", "Verify", None)
    assert graph_keys(sb, http, linked, graph_token) == [
        custom_key_identifier(credential),
        custom_key_identifier(new_credential),
    ]
    # No propagation delay by default: the token endpoint takes the new certificate at once.
    accepted = post_assertion(linked.tenant_id, linked.app_id, new_credential)
    assert accepted.status_code == 200, accepted.text


def test_a_ps256_proof_naming_the_sha256_thumbprint_is_accepted(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    new_credential: Credential,
) -> None:
    proof = make_proof(credential, object_id_of(sb, linked), algorithm="PS256")
    assert add_key(sb, http, linked, graph_token, new_credential, proof).status_code == 200


def test_a_new_certificate_is_accepted_only_after_the_propagation_delay(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    new_credential: Credential,
    post_assertion: PostAssertion,
) -> None:
    sb.admin.update_tenant(linked.tenant_id, certificate_propagation_seconds=1)
    time.sleep(1.1)  # the linked certificate, uploaded moments ago, is accepted by now
    proof = make_proof(credential, object_id_of(sb, linked))
    assert add_key(sb, http, linked, graph_token, new_credential, proof).status_code == 200
    added_at = time.monotonic()

    early = post_assertion(linked.tenant_id, linked.app_id, new_credential)
    assert early.status_code == 401, early.text
    assert early.json()["error_codes"] == [700027]
    assert "The key was not found." in early.json()["error_description"]
    # Graph lists it at once, and the old certificate keeps working meanwhile.
    assert custom_key_identifier(new_credential) in graph_keys(sb, http, linked, graph_token)
    assert post_assertion(linked.tenant_id, linked.app_id, credential).status_code == 200

    time.sleep(max(0.0, 1.1 - (time.monotonic() - added_at)))
    later = post_assertion(linked.tenant_id, linked.app_id, new_credential)
    assert later.status_code == 200, later.text


def test_the_propagation_delay_also_holds_for_uploads(
    sb: Sandbox, linked: Linked, new_credential: Credential, post_assertion: PostAssertion
) -> None:
    sb.admin.update_tenant(linked.tenant_id, certificate_propagation_seconds=3600)
    uploaded = sb.admin.upload_certificate(linked.tenant_id, linked.app_id, new_credential.cert_pem)
    assert uploaded["addedDateTime"]
    refused = post_assertion(linked.tenant_id, linked.app_id, new_credential)
    assert refused.json()["error_codes"] == [700027]
    tenant = sb.admin.update_tenant(linked.tenant_id, certificate_propagation_seconds=0)
    assert tenant["certificatePropagationSeconds"] == 0
    assert post_assertion(linked.tenant_id, linked.app_id, new_credential).status_code == 200


def test_a_proof_signed_by_a_certificate_the_application_does_not_have_is_refused(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    other_credential: Credential,
    new_credential: Credential,
) -> None:
    proof = make_proof(other_credential, object_id_of(sb, linked))
    response = add_key(sb, http, linked, graph_token, new_credential, proof)
    assert "thumbprint" in proof_refused(response)
    assert response.json()["error"]["message"] == "Access Token missing or malformed."
    assert custom_key_identifier(new_credential) not in graph_keys(sb, http, linked, graph_token)


def test_a_proof_signed_by_an_expired_certificate_of_the_application_is_refused(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    expired_credential: Credential,
    new_credential: Credential,
) -> None:
    sb.admin.upload_certificate(linked.tenant_id, linked.app_id, expired_credential.cert_pem)
    proof = make_proof(expired_credential, object_id_of(sb, linked))
    response = add_key(sb, http, linked, graph_token, new_credential, proof)
    assert "expired" in proof_refused(response)


def test_a_proof_whose_signature_does_not_verify_is_refused(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    other_credential: Credential,
    new_credential: Credential,
) -> None:
    # Names the application's certificate but is signed by another key.
    forged = Credential(other_credential.key, credential.certificate)
    proof = make_proof(forged, object_id_of(sb, linked))
    response = add_key(sb, http, linked, graph_token, new_credential, proof)
    assert "signature" in proof_refused(response)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"audience": "00000003-0000-0000-c000-000000000000"}, "aud must be"),
        ({"issuer": "app-id"}, "iss must be the application's object id"),
        ({"lifetime": 601}, "more than 10 minutes"),
        ({"not_before": int(time.time()) - 1200}, "expired"),
        ({"claims": {"nbf": None}}, "no nbf claim"),
        ({"claims": {"exp": None}}, "no exp claim"),
    ],
    ids=["wrong-aud", "iss-is-app-id", "lifetime-over-10-min", "expired", "no-nbf", "no-exp"],
)
def test_a_proof_with_a_wrong_claim_is_refused(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    new_credential: Credential,
    change: dict[str, Any],
    reason: str,
) -> None:
    options = dict(change)
    issuer = options.pop("issuer", object_id_of(sb, linked))
    if issuer == "app-id":
        issuer = linked.app_id
    proof = make_proof(credential, issuer, **options)
    response = add_key(sb, http, linked, graph_token, new_credential, proof)
    assert reason in proof_refused(response)


def test_add_key_without_a_proof_is_denied(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    new_credential: Credential,
) -> None:
    response = add_key(sb, http, linked, graph_token, new_credential, None)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"


def test_only_the_application_itself_may_roll_its_keys(
    sb: Sandbox,
    http: requests.Session,
    msal_app: MsalFactory,
    linked: Linked,
    credential: Credential,
    other_credential: Credential,
    new_credential: Credential,
) -> None:
    other = sb.admin.create_application(linked.tenant_id, "Another app")
    sb.admin.upload_certificate(linked.tenant_id, other["appId"], other_credential.cert_pem)
    other_linked = Linked(linked.tenant_id, other["appId"], linked.domain, "")
    other_token = token_for(msal_app, other_linked, other_credential)
    proof = make_proof(credential, object_id_of(sb, linked))
    response = add_key(sb, http, linked, other_token, new_credential, proof)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"


def test_a_bad_key_or_a_certificate_already_there_is_a_bad_request(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
) -> None:
    object_id = object_id_of(sb, linked)
    body = add_key_body(credential, make_proof(credential, object_id))
    response = post(sb, http, f"applications/{object_id}/addKey", graph_token, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_BadRequest"
    body["keyCredential"]["key"] = "bm90IGEgY2VydGlmaWNhdGU="
    response = post(sb, http, f"applications/{object_id}/addKey", graph_token, body)
    assert response.status_code == 400
    assert "'key'" in response.json()["error"]["message"]


def test_a_lifetime_policy_refuses_long_certificates_on_add_key_and_upload(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    new_credential: Credential,
) -> None:
    tenant = sb.admin.set_certificate_policy(linked.tenant_id, 180)
    assert tenant["maxCertificateLifetimeDays"] == 180
    proof = make_proof(credential, object_id_of(sb, linked))
    refused = add_key(sb, http, linked, graph_token, new_credential, proof)  # valid 365 days
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert error["message"].startswith(
        "Credential lifetime exceeds the max value allowed as per assigned policy"
    )
    assert error["details"] == [
        {"code": "InvalidKeyEndDate", "message": error["message"], "target": "EndDate"}
    ]
    with pytest.raises(SandboxAdminError) as upload:
        sb.admin.upload_certificate(linked.tenant_id, linked.app_id, new_credential.cert_pem)
    assert upload.value.status == 400
    assert "CredentialInvalidLifetimeAsPerAppPolicy" in upload.value.message

    now = datetime.now(UTC)
    short = make_credential(now - timedelta(minutes=5), now + timedelta(days=90))
    assert add_key(sb, http, linked, graph_token, short, proof).status_code == 200
    sb.admin.set_certificate_policy(linked.tenant_id, None)
    assert add_key(sb, http, linked, graph_token, new_credential, proof).status_code == 200


def test_remove_key_removes_the_old_certificate_with_a_proof_from_the_new_one(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    new_credential: Credential,
    post_assertion: PostAssertion,
) -> None:
    object_id = object_id_of(sb, linked)
    added = add_key(
        sb, http, linked, graph_token, new_credential, make_proof(credential, object_id)
    )
    assert added.status_code == 200
    old_key_id = sb.admin.get_application(linked.tenant_id, linked.app_id)["certificates"][0][
        "keyId"
    ]
    path = f"applications/{object_id}/removeKey"

    # The certificate that signs the proof cannot remove itself.
    own = post(
        sb,
        http,
        path,
        graph_token,
        {"keyId": added.json()["keyId"], "proof": make_proof(new_credential, object_id)},
    )
    assert own.status_code == 400
    assert own.json()["error"]["code"] == "Request_BadRequest"

    unknown = post(
        sb,
        http,
        path,
        graph_token,
        {
            "keyId": "00000000-0000-0000-0000-000000000001",
            "proof": make_proof(credential, object_id),
        },
    )
    assert unknown.status_code == 404

    removed = post(
        sb,
        http,
        path,
        graph_token,
        {"keyId": old_key_id, "proof": make_proof(new_credential, object_id)},
    )
    assert removed.status_code == 204, removed.text
    assert graph_keys(sb, http, linked, graph_token) == [custom_key_identifier(new_credential)]
    gone = post_assertion(linked.tenant_id, linked.app_id, credential)
    assert gone.json()["error_codes"] == [700027]
    assert post_assertion(linked.tenant_id, linked.app_id, new_credential).status_code == 200


def test_remove_key_needs_a_valid_proof(
    sb: Sandbox,
    http: requests.Session,
    linked: Linked,
    graph_token: str,
    credential: Credential,
    other_credential: Credential,
) -> None:
    object_id = object_id_of(sb, linked)
    key_id = sb.admin.get_application(linked.tenant_id, linked.app_id)["certificates"][0]["keyId"]
    path = f"applications/{object_id}/removeKey"
    forged = post(
        sb,
        http,
        path,
        graph_token,
        {"keyId": key_id, "proof": make_proof(other_credential, object_id)},
    )
    proof_refused(forged)
    assert post(sb, http, path, graph_token, {"keyId": key_id}).status_code == 403
    assert len(graph_keys(sb, http, linked, graph_token)) == 1
