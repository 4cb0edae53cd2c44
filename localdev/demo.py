"""`python -m localdev demo`: walks the linking flow against the running app and sandbox, showing
what a customer sees at each step, including how each common mistake is reported."""

from __future__ import annotations

from typing import Any

import requests

MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "skipped": "–", "error": "⟳"}


def _show(report: dict[str, Any]) -> None:
    print(f"   report status: {report['status']}")
    for check in report["checks"]:
        line = f"   {MARKS[check['status']]} {check['id']:<20} {check['detail']}"
        print(line[:160])
        if check["status"] in ("fail", "warn"):
            print(f"       fix: {check['remediation']}"[:240])


def walk(base: str, sandbox: Any, demo: dict[str, str] | None) -> int:
    if sandbox is None or demo is None:
        print("the demo needs the sandbox tenant (run without --no-sandbox)")
        return 2
    api = requests.Session()
    tid, app = demo["tenantId"], demo["applicationId"]

    print("\n1. Generate public key & Download")
    key = api.post(
        f"{base}/api/keys",
        json={"tenantId": tid, "applicationId": app, "displayName": "Contoso demo"},
        timeout=30,
    ).json()
    cer = api.get(f"{base}/api/keys/{key['keyId']}", params={"format": "cer"}, timeout=30)
    print(f"   key {key['keyId']}, thumbprint {key['thumbprint']}, {len(cer.content)} bytes .cer")

    print("\n2. Connect before uploading the certificate, and verify")
    account = api.post(
        f"{base}/api/accounts",
        json={
            "displayName": "Contoso demo",
            "tenantId": tid,
            "applicationId": app,
            "organizationName": "contoso.com",
            "keyId": key["keyId"],
        },
        timeout=30,
    ).json()
    verify = f"{base}/api/accounts/{account['id']}/verify"
    _show(api.post(verify, timeout=60).json())

    print("\n3. Upload the certificate in the (sandbox) Entra admin center, verify again")
    sandbox.admin.upload_certificate(tid, app, cer.content)
    _show(api.post(verify, timeout=60).json())

    print("\n4. An admin revokes consent: the next verification says what to do")
    sandbox.admin.set_permissions(tid, app, [])
    _show(api.post(verify, timeout=60).json())
    sandbox.admin.set_permissions(tid, app, ["AccessReview.Read.All"])

    print("\n5. Microsoft Graph is down: the account keeps its status, the report says retry")
    sandbox.admin.add_fault("graph", 503)
    report = api.post(verify, timeout=60).json()
    sandbox.admin.clear_faults()
    _show(report)
    status = api.get(f"{base}/api/accounts/{account['id']}", timeout=30).json()["status"]
    print(f"   account status stays: {status}")

    print("\n6. Unlink")
    unlinked = api.delete(f"{base}/api/accounts/{account['id']}", timeout=30)
    print(f"   DELETE -> {unlinked.status_code}")
    return _federated(api, base, sandbox, tid, app)


def _federated(api: requests.Session, base: str, sandbox: Any, tid: str, app: str) -> int:
    """The same link with a federated credential: nothing downloaded to upload, nothing expires."""
    print("\n7. Link again with a federated credential (the app is the OpenID issuer)")
    key = api.post(
        f"{base}/api/keys",
        json={"kind": "federated", "tenantId": tid, "applicationId": app, "displayName": "Contoso"},
        timeout=30,
    ).json()
    federation = key["federation"]
    print(f"   issuer   {federation['issuer']}")
    print(f"   subject  {federation['subject']}")
    print(f"   audience {federation['audience']}")
    download = api.get(f"{base}/api/keys/{key['keyId']}", params={"format": "json"}, timeout=30)
    print("   add it in the (sandbox) admin center: Federated credentials > Other issuer")
    sandbox.admin.add_federated_credential(tid, app, download.json())
    account = api.post(
        f"{base}/api/accounts",
        json={
            "displayName": "Contoso (federated)",
            "tenantId": tid,
            "applicationId": app,
            "organizationName": "contoso.com",
            "keyId": key["keyId"],
        },
        timeout=30,
    ).json()
    _show(api.post(f"{base}/api/accounts/{account['id']}/verify", timeout=60).json())
    unlinked = api.delete(f"{base}/api/accounts/{account['id']}", timeout=30)
    print(f"   unlink -> {unlinked.status_code}")
    return 0
