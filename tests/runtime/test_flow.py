"""The whole linking flow through Microsoft's worker library, against the sandbox tenant.

Every request goes through the local host's HTTP front into an `InvocationRequest`, is run by
`azure-functions-runtime-v1` on its thread pool, and comes back from its `InvocationResponse`;
the timer runs from its `TimerInfo`. The assertions are the ones the end-to-end tests make.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from shared.support.timefmt import from_rfc3339
from tests.conftest import Azurite, RunningApp
from tests.e2e.customer import TOKEN_CHECKS, Customer, check
from tests.runtime.worker_host import WorkerHost

DOWNLOADS = {
    "cer": "application/pkix-cert",
    "pem": "application/x-pem-file",
    "crt": "application/x-pem-file",
}


@pytest.fixture(params=["sqlite", "table"])
def app(request: pytest.FixtureRequest, sandboxed_worker_app: Callable[..., RunningApp]) -> Any:
    if request.param == "sqlite":
        return sandboxed_worker_app()
    azurite: Azurite = request.getfixturevalue("azurite")
    return sandboxed_worker_app(
        {
            "ACCOUNTS_STORAGE": azurite.connection_string,
            "ACCOUNTS_TABLE_NAME": "t" + uuid.uuid4().hex[:16],
        }
    )


def download_and_upload(customer: Customer, key: dict[str, Any]) -> None:
    """Each download format, as bytes: DER is the certificate with the key's thumbprint, the
    PEM ones the same certificate. The DER one is uploaded, as the linking guide says."""
    der = b""
    for fmt, content_type in DOWNLOADS.items():
        response = customer.app.http.get(
            customer.app.api(f"/keys/{key['keyId']}"), params={"format": fmt}
        )
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == content_type
        assert response.headers["Content-Disposition"].startswith('attachment; filename="')
        assert response.headers["Content-Disposition"].endswith(f'.{fmt}"')
        if fmt == "cer":
            der = response.content
            sha1 = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the thumbprint is SHA-1
            assert sha1 == key["thumbprint"]
        else:
            pem = x509.load_pem_x509_certificate(response.content)
            assert pem.public_bytes(Encoding.DER) == der
    customer.admin.upload_certificate(customer.tenant_id, customer.application_id, der)


def linked(app: RunningApp, sandbox: Any, name: str) -> Customer:
    """Register, key, download and upload, Connect: the account is pending."""
    customer = Customer(app, sandbox).register(name=name)
    key = customer.generate_key()
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json() == key
    download_and_upload(customer, key)
    account = customer.connect()
    assert account["status"] == "pending" and account["access"] == "read-only"
    assert account["keyId"] == key["keyId"] and account["thumbprint"] == key["thumbprint"]
    return customer


def every_page(app: RunningApp, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    response = app.http.get(app.api(path), params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        if "nextLink" not in body:
            return items
        response = app.http.get(app.url + body["nextLink"])


def test_the_linking_flow(app: RunningApp, sandbox: Any) -> None:
    first = linked(app, sandbox, "Contoso")
    report = first.verify()
    assert report["status"] == "connected"
    assert all(check(report, c)["status"] == "pass" for c in ("certificate", *TOKEN_CHECKS[:3]))
    assert first.current()["status"] == "connected"
    others = [linked(app, sandbox, name) for name in ("Fabrikam", "Tailspin")]

    # The paged list, newest first (ties by id), each account once; the status filter.
    listed = every_page(app, "/accounts", top=1)
    newest_first = sorted(
        listed, key=lambda a: (-from_rfc3339(a["createdAt"]).timestamp(), a["id"])
    )
    assert listed == newest_first
    assert sorted(a["id"] for a in listed) == sorted(c.account["id"] for c in (first, *others))
    only = app.http.get(app.api("/accounts"), params={"status": "connected"}).json()
    assert [a["id"] for a in only["value"]] == [first.account["id"]]

    # PATCH with If-Match: the current ETag applies, an older one is a 412.
    path = app.api(f"/accounts/{first.account['id']}")
    etag = app.http.get(path).headers["ETag"]
    patched = app.http.patch(
        path,
        data=b'{"displayName": "Contoso EU"}',
        headers={"Content-Type": "application/merge-patch+json", "If-Match": etag},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["displayName"] == "Contoso EU" and patched.headers["ETag"] != etag
    stale = app.http.patch(path, json={"displayName": "Old"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.headers["Content-Type"] == "application/problem+json"

    # Rotation by hand: start, download and upload the new certificate, verify: switched.
    started = app.http.post(app.api(f"/accounts/{first.account['id']}/rotation"))
    assert started.status_code == 201, started.text
    rotation = started.json()
    assert rotation["status"] == "awaiting_upload"
    download_and_upload(first, rotation["key"])
    report = first.verify()
    assert report["status"] == "connected" and report["rotation"]["status"] == "completed"
    assert first.current()["keyId"] == rotation["key"]["keyId"]

    # History (newest first) and the change feed (oldest first, with its cursor).
    history = every_page(app, f"/accounts/{first.account['id']}/history", top=2)
    types = [e["type"] for e in history]
    assert types[-1] == "linked"
    assert {"updated", "rotation_started", "rotation_completed"} <= set(types)
    feed = app.http.get(app.api("/events")).json()
    linked_ids = [e["accountId"] for e in feed["value"] if e["type"] == "linked"]
    assert linked_ids == [c.account["id"] for c in (first, *others)]
    rest = app.http.get(app.api("/events"), params={"after": feed["cursor"]}).json()
    assert rest == {"value": [], "cursor": feed["cursor"]}

    onboarding = app.http.get(app.api("/onboarding")).json()
    assert onboarding == {"required": False, "linkedAccounts": 3, "connectedAccounts": 1}

    # The timer, from its TimerInfo: verifies the accounts due (every one, interval 0).
    host: WorkerHost = app.host  # type: ignore[assignment]
    ran = host.run_timer("health_check")
    assert ran.result.status == host.worker.protos.StatusResult.Success, ran.result.exception
    assert ran.return_value.WhichOneof("data") is None  # no $return binding, nothing returned
    assert all(c.current()["status"] == "connected" for c in (first, *others))
    onboarding = app.http.get(app.api("/onboarding")).json()
    assert onboarding == {"required": False, "linkedAccounts": 3, "connectedAccounts": 3}

    health = app.http.get(app.api("/health"))
    assert health.status_code == 200 and health.json()["status"] == "ok"

    # Unlink with If-Match: gone from every later answer.
    etag = app.http.get(path).headers["ETag"]
    assert app.http.delete(path, headers={"If-Match": etag}).status_code == 204
    assert app.http.get(path).status_code == 404
    assert app.http.get(app.api(f"/keys/{rotation['key']['keyId']}")).status_code == 404
