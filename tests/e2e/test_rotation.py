"""Certificate renewal by hand: start, download, upload, verify (switched), retire; cancel; 409s;
`failed`; unlink during a rotation. Against the sandbox tenant, on both account stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.support.timefmt import from_rfc3339, utc_now
from shared.timer import run as health_check
from tests.conftest import Azurite, RunningApp
from tests.e2e.customer import Customer, check


def table_settings(azurite: Azurite) -> dict[str, str]:
    return {
        "ACCOUNTS_STORAGE": azurite.connection_string,
        "ACCOUNTS_TABLE_NAME": "t" + uuid.uuid4().hex[:16],
    }


@pytest.fixture(params=["sqlite", "table"])
def app(request: pytest.FixtureRequest, sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    if request.param == "sqlite":
        return sandboxed_app()
    return sandboxed_app(table_settings(request.getfixturevalue("azurite")))


def connected(app: RunningApp, sandbox: Any, **register: Any) -> Customer:
    customer = Customer(app, sandbox).link_all_the_way(**register)
    assert customer.verify()["status"] == "connected"
    return customer


def start(customer: Customer, **body: Any) -> dict[str, Any]:
    response = customer.app.http.post(
        customer.app.api(f"/accounts/{customer.account['id']}/rotation"), json=body
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/api/accounts/{customer.account['id']}/rotation"
    rotation: dict[str, Any] = response.json()
    return rotation


def rotation_now(customer: Customer) -> dict[str, Any]:
    response = customer.app.http.get(
        customer.app.api(f"/accounts/{customer.account['id']}/rotation")
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def key_status(app: RunningApp, key_id: str) -> int:
    return app.http.get(app.api(f"/keys/{key_id}")).status_code


def upload(customer: Customer, key_id: str) -> None:
    download = customer.app.http.get(customer.app.api(f"/keys/{key_id}"), params={"format": "cer"})
    assert download.status_code == 200
    customer.admin.upload_certificate(customer.tenant_id, customer.application_id, download.content)


def private_key_exists(app: RunningApp, key_id: str) -> bool:
    return any(k.key_id == key_id for store in app.context.key_stores() for k in store.list())


def events_of(customer: Customer) -> list[dict[str, Any]]:
    response = customer.app.http.get(
        customer.app.api(f"/accounts/{customer.account['id']}/history"), params={"top": 100}
    )
    assert response.status_code == 200
    return list(reversed(response.json()["value"]))  # oldest first


def test_manual_rotation_switches_once_entra_accepts_the_new_certificate(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = customer.current()
    rotation = start(customer)
    new_key = rotation["key"]
    assert rotation["status"] == "awaiting_upload"
    assert rotation["renewal"] == "manual"
    assert rotation["previousKeyId"] == old["keyId"]
    assert new_key["accountId"] == old["id"] and new_key["expiresAt"] is None
    assert new_key["thumbprint"] != old["thumbprint"]
    # The new key lasts as long as the one it replaces (365 days), from now.
    assert abs((from_rfc3339(new_key["notAfter"]) - utc_now()).days - 365) <= 1
    assert customer.current()["rotation"] == rotation

    # Not uploaded yet: still connected with the old key; the report says what to upload.
    report = customer.verify()
    assert report["status"] == "connected"
    assert customer.current()["keyId"] == old["keyId"]
    assert report["rotation"]["status"] == "awaiting_upload"
    expiry = check(report, "certificate_expiry")
    assert new_key["thumbprint"] in expiry["detail"]
    assert f"/api/keys/{new_key['keyId']}?format=cer" in expiry["detail"]

    upload(customer, new_key["keyId"])
    report = customer.verify()
    account = customer.current()
    assert report["status"] == "connected"
    assert (account["keyId"], account["thumbprint"]) == (new_key["keyId"], new_key["thumbprint"])
    assert account["certificateNotAfter"] == new_key["notAfter"]
    assert report["rotation"]["status"] == "completed"
    assert account["rotation"]["status"] == "completed"
    assert check(report, "certificate")["status"] == "pass"
    used_by = {c["thumbprint"]: c["usedBy"] for c in report["appRegistration"]["certificates"]}
    assert used_by == {new_key["thumbprint"]: "this-account", old["thumbprint"]: "previous"}
    retires = from_rfc3339(account["rotation"]["retiresAt"])
    assert timedelta(days=6, hours=23) < retires - utc_now() <= timedelta(days=7)

    # The replaced key stays usable for the retirement window...
    assert key_status(app, old["keyId"]) == 200
    assert private_key_exists(app, old["keyId"])
    health_check.run(app.context, now=utc_now() + timedelta(days=6))
    assert key_status(app, old["keyId"]) == 200
    # ...then the timer deletes it, private key included.
    health_check.run(app.context, now=utc_now() + timedelta(days=7, minutes=1))
    assert key_status(app, old["keyId"]) == 404
    assert not private_key_exists(app, old["keyId"])
    assert private_key_exists(app, new_key["keyId"])
    assert customer.current()["rotation"]["previousRetiredAt"] is not None
    assert customer.verify()["status"] == "connected"  # the new key goes on working
    types = [e["type"] for e in events_of(customer)]
    assert types.count("rotation_started") == 1 and types.count("rotation_completed") == 1


def test_removing_the_old_certificate_first_switches_and_stays_connected(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = customer.current()
    new_key = start(customer)["key"]
    # The customer removes the old certificate before uploading the new one: broken for now.
    admin, tenant, application = customer.admin, customer.tenant_id, customer.application_id
    admin.delete_certificate(tenant, application, old["thumbprint"])
    report = customer.verify()
    assert report["status"] == "action_required"
    assert check(report, "certificate")["status"] == "fail"
    assert customer.current()["keyId"] == old["keyId"]
    # Uploading the new one mends it: the new key is accepted though the current one is not.
    upload(customer, new_key["keyId"])
    report = customer.verify()
    assert report["status"] == "connected"
    assert customer.current()["keyId"] == new_key["keyId"]
    assert customer.current()["status"] == "connected"


def test_a_second_start_is_a_409_naming_the_rotations_key(app: RunningApp, sandbox: Any) -> None:
    customer = connected(app, sandbox)
    rotation = start(customer)
    again = app.http.post(app.api(f"/accounts/{customer.account['id']}/rotation"), json={})
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"
    assert again.json()["keyId"] == rotation["key"]["keyId"]
    assert rotation_now(customer) == rotation  # nothing changed


def test_cancel_deletes_the_new_key_and_leaves_the_account_as_it_was(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    before = customer.current()
    new_key = start(customer)["key"]
    path = app.api(f"/accounts/{customer.account['id']}/rotation")
    assert app.http.delete(path).status_code == 204
    assert key_status(app, new_key["keyId"]) == 404
    assert not private_key_exists(app, new_key["keyId"])
    after = customer.current()
    assert (after["keyId"], after["thumbprint"]) == (before["keyId"], before["thumbprint"])
    assert rotation_now(customer)["status"] == "cancelled"
    finished = app.http.delete(path)
    assert finished.status_code == 409
    assert customer.verify()["status"] == "connected"
    # A new renewal can start after a cancelled one.
    assert start(customer)["key"]["keyId"] != new_key["keyId"]


def test_no_rotation_yet_is_a_404_for_get_and_delete(app: RunningApp, sandbox: Any) -> None:
    customer = connected(app, sandbox)
    path = app.api(f"/accounts/{customer.account['id']}/rotation")
    assert app.http.get(path).status_code == 404
    assert app.http.delete(path).status_code == 404
    assert customer.current()["rotation"] is None


def test_a_rotation_body_outside_the_rules_is_a_400_and_starts_nothing(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    path = app.api(f"/accounts/{customer.account['id']}/rotation")
    for body, field in (
        ({"validityDays": 59}, "validityDays"),  # under twice CERT_EXPIRY_WARNING_DAYS (30)
        ({"validityDays": 731}, "validityDays"),
        ({"validityDays": 90.0}, "validityDays"),
        ({"keySize": 1024}, "keySize"),
    ):
        response = app.http.post(path, json=body)
        assert response.status_code == 400, body
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert app.http.get(path).status_code == 404
    assert start(customer, validityDays=60, keySize=3072)["key"]["keySize"] == 3072


def test_unlink_during_a_rotation_deletes_both_keys(app: RunningApp, sandbox: Any) -> None:
    customer = connected(app, sandbox)
    old_key = customer.current()["keyId"]
    new_key = start(customer)["key"]["keyId"]
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    for key_id in (old_key, new_key):
        assert key_status(app, key_id) == 404
        assert not private_key_exists(app, key_id)


def test_unlink_inside_the_retirement_window_deletes_the_replaced_key_too(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old_key = customer.current()["keyId"]
    new_key = start(customer)["key"]["keyId"]
    upload(customer, new_key)
    customer.verify()
    assert customer.current()["keyId"] == new_key
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    for key_id in (old_key, new_key):
        assert key_status(app, key_id) == 404
        assert not private_key_exists(app, key_id)


def test_a_new_certificate_that_expires_before_it_is_accepted_fails_the_rotation(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app({"CERT_EXPIRY_WARNING_DAYS": "0"})
    customer = connected(app, sandbox)
    new_key = start(customer, validityDays=1)["key"]
    health_check.run(app.context, now=utc_now() + timedelta(days=2))
    rotation = rotation_now(customer)
    assert rotation["status"] == "failed"
    assert "expired" in rotation["detail"] and new_key["thumbprint"] in rotation["detail"]
    assert key_status(app, new_key["keyId"]) == 404
    assert customer.current()["keyId"] != new_key["keyId"]
    assert "rotation_failed" in [e["type"] for e in events_of(customer)]


def test_key_retirement_days_zero_retires_at_the_next_run(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app({"KEY_RETIREMENT_DAYS": "0"})
    customer = connected(app, sandbox)
    old_key = customer.current()["keyId"]
    new_key = start(customer)["key"]["keyId"]
    upload(customer, new_key)
    customer.verify()
    assert key_status(app, old_key) == 200
    health_check.run(app.context)
    assert key_status(app, old_key) == 404
