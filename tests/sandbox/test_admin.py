"""The admin API and the Sandbox object: tenant setup, validation, portal tokens, lifecycle."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests

from localdev.sandbox import Sandbox, SandboxAdminError
from tests.sandbox.tenant_setup import Credential, Linked

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"


def test_tenant_defaults_and_changes(sb: Sandbox) -> None:
    tenant = sb.admin.create_tenant("Northwind")
    assert tenant["cloud"] == "global"
    assert tenant["licensed"] is True and tenant["emitWids"] is True
    assert tenant["licenseErrorStyle"] == "code"
    assert tenant["domains"] == [f"sandbox{tenant['tenantId'][:8]}.onmicrosoft.com"]
    changed = sb.admin.update_tenant(
        tenant["tenantId"], licensed=False, license_error_style="message", domains=["nw.example"]
    )
    assert changed["licensed"] is False and changed["licenseErrorStyle"] == "message"
    assert sb.admin.get_tenant("nw.example")["tenantId"] == tenant["tenantId"]
    assert [t["tenantId"] for t in sb.admin.tenants()] == [tenant["tenantId"]]


@pytest.mark.parametrize(
    "body",
    [
        {"tenantId": "not-a-guid"},
        {"cloud": "mars"},
        {"domains": ["not a domain"]},
        {"licensed": "yes"},
        {"licenseErrorStyle": "shout"},
        {"unknownField": 1},
    ],
)
def test_tenant_validation(sb: Sandbox, http: requests.Session, body: dict) -> None:
    response = http.post(f"{sb.base_url}/admin/tenants", json=body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_conflicts(sb: Sandbox) -> None:
    tenant = sb.admin.create_tenant("A", domains=["a.example"])
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.create_tenant("B", domains=["a.example"])
    assert raised.value.status == 409
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.create_tenant("A again", tenant_id=tenant["tenantId"])
    assert raised.value.status == 409


def test_certificate_upload_formats(
    sb: Sandbox, http: requests.Session, credential: Credential, other_credential: Credential
) -> None:
    tid = sb.admin.create_tenant("A")["tenantId"]
    app_id = sb.admin.create_application(tid, "App")["appId"]
    uploaded = sb.admin.upload_certificate(tid, app_id, credential.cert_pem)
    assert uploaded["thumbprint"] == credential.sha1_hex.upper()
    assert uploaded["thumbprintSha256"] == credential.sha256.hex().upper()
    assert uploaded["notAfter"].endswith("Z")
    url = f"{sb.base_url}/admin/tenants/{tid}/applications/{app_id}/certificates"
    again = http.post(
        url, data=credential.cert_der, headers={"Content-Type": "application/pkix-cert"}
    )
    assert again.status_code == 200  # the same certificate twice is one key credential
    as_json = http.post(url, json={"certificate": other_credential.cert_pem})
    assert as_json.status_code == 201
    assert len(sb.admin.get_application(tid, app_id)["certificates"]) == 2
    for garbage in (b"hello", credential.key_pem.encode()):
        refused = http.post(url, data=garbage, headers={"Content-Type": "application/x-pem-file"})
        assert refused.status_code == 400
    assert "PRIVATE" not in repr(sb.admin.tenants())
    sb.admin.delete_certificate(tid, app_id, credential.sha1_hex.lower())
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.delete_certificate(tid, app_id, credential.sha1_hex)
    assert raised.value.status == 404


def test_directory_roles_by_name_or_template_id(sb: Sandbox, linked: Linked) -> None:
    unknown_template = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    app = sb.admin.set_directory_roles(
        linked.tenant_id, linked.app_id, ["global reader", "Directory Readers", unknown_template]
    )
    assert [r["roleTemplateId"] for r in app["directoryRoles"]] == [
        GLOBAL_READER,
        "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
        unknown_template,
    ]
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.set_directory_roles(linked.tenant_id, linked.app_id, ["Supreme Leader"])
    assert raised.value.status == 400


def test_consent_needs_a_service_principal(sb: Sandbox) -> None:
    tid = sb.admin.create_tenant("A")["tenantId"]
    app = sb.admin.create_application(tid, "App", service_principal=False)
    assert app["servicePrincipalId"] is None
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.set_permissions(tid, app["appId"], ["AccessReview.Read.All"])
    assert raised.value.status == 409
    restored = sb.admin.update_application(tid, app["appId"], service_principal=True)
    assert restored["servicePrincipalId"]


def test_unknown_tenant_or_app_is_404(sb: Sandbox) -> None:
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.get_tenant("5b7e2f3c-0000-4000-8000-000000000000")
    assert raised.value.status == 404
    tid = sb.admin.create_tenant("A")["tenantId"]
    with pytest.raises(SandboxAdminError) as raised:
        sb.admin.get_application(tid, "5b7e2f3c-0000-4000-8000-000000000000")
    assert raised.value.status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"target": "nowhere", "status": 500},
        {"target": "graph"},
        {"target": "graph", "status": 42},
        {"target": "graph", "status": 500, "path": "("},
        {"target": "graph", "status": 500, "count": 0},
    ],
)
def test_fault_validation(sb: Sandbox, http: requests.Session, body: dict) -> None:
    assert http.post(f"{sb.base_url}/admin/faults", json=body).status_code == 400


def test_reset_forgets_everything(sb: Sandbox, linked: Linked) -> None:
    sb.admin.add_fault("graph", 500)
    sb.admin.set_latency(5)
    sb.reset()
    assert sb.admin.tenants() == []
    assert sb.admin.faults() == []
    assert sb.admin.requests()["value"] == []
    assert sb.admin.keyvault_state() == {"secrets": [], "deletedSecrets": [], "requests": []}


def test_portal_tokens_verify_against_the_portal_jwks(sb: Sandbox, http: requests.Session) -> None:
    tid = "9a0b1c2d-0000-4000-8000-000000000001"
    token = sb.admin.mint_portal_token(
        tid, "api://portal-backend", claims={"name": "Ada", "sub": None}, expires_in=120
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"]
    document = http.get(f"{sb.base_url}/portal/{tid}/v2.0/.well-known/openid-configuration").json()
    assert document["issuer"] == f"{sb.base_url}/{tid}/v2.0"
    keys = http.get(document["jwks_uri"]).json()["keys"]
    assert {"kty", "kid", "use", "n", "e"} <= set(keys[0])
    claims = jwt.decode(
        token,
        jwt.PyJWK(keys[0]).key,
        algorithms=["RS256"],
        audience="api://portal-backend",
        issuer=f"{sb.base_url}/{tid}/v2.0",
    )
    assert claims["tid"] == tid and claims["name"] == "Ada" and claims["oid"]
    assert "sub" not in claims
    assert claims["exp"] - claims["iat"] == 120
    expired = sb.admin.mint_portal_token(tid, "api://portal-backend", expires_in=-60)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(
            expired, jwt.PyJWK(keys[0]).key, algorithms=["RS256"], audience="api://portal-backend"
        )


def test_app_settings_point_at_the_sandbox(sb: Sandbox) -> None:
    assert sb.app_settings() == {
        "ENTRA_AUTHORITY_HOST": sb.base_url,
        "GRAPH_ENDPOINT": sb.base_url,
        "KEY_VAULT_URL": sb.keyvault_url,
        "REQUESTS_CA_BUNDLE": sb.ca_bundle_path,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_given_ports_and_a_quick_clean_stop(tmp_path: Path) -> None:
    port, vault_port = _free_port(), _free_port()
    ca_path = tmp_path / "ca.pem"
    outcome: list[object] = []
    with Sandbox(port=port, keyvault_port=vault_port, ca_bundle_path=ca_path) as sandbox:
        assert sandbox.base_url == f"https://127.0.0.1:{port}"
        assert sandbox.keyvault_url == f"https://127.0.0.1:{vault_port}"
        sandbox.admin.set_latency(3000)
        session = requests.Session()
        session.trust_env = False

        def slow_call() -> None:
            try:
                outcome.append(session.get(f"{sandbox.base_url}/common/discovery/instance",
                                           verify=str(ca_path), timeout=10))  # fmt: skip
            except requests.RequestException as error:
                outcome.append(error)

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.3)  # the request is now waiting out its latency inside the sandbox
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    caller.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    assert ca_path.exists()  # a CA path the caller chose stays for them
    with pytest.raises(requests.ConnectionError):
        session.get(f"https://127.0.0.1:{port}/admin/tenants", verify=str(ca_path), timeout=2)


def test_temporary_ca_is_removed_on_stop() -> None:
    with Sandbox() as sandbox:
        path = sandbox.ca_bundle_path
        with open(path) as file:
            assert "BEGIN CERTIFICATE" in file.read()
    with pytest.raises(FileNotFoundError):
        open(path).close()
