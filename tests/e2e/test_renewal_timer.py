"""The timer renews certificates by itself: it starts a rotation inside the expiry warning window,
and with automatic renewal completes it with no customer action (Graph addKey, Entra's
propagation delay, the switch, removeKey after retirement). Also the refusals Graph gives, and
what a rotation costs in outbound requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, check
from tests.e2e.test_rotation import events_of, key_status, private_key_exists, rotation_now, start


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    return sandboxed_app()


def expiring(app: RunningApp, sandbox: Any, *, days: int = 20, **connect: Any) -> Customer:
    """A connected customer whose certificate has `days` left (inside the 30-day window)."""
    customer = Customer(app, sandbox).register()
    customer.generate_key(validityDays=days)
    customer.upload_certificate()
    customer.connect(**connect)
    assert customer.verify()["status"] == "connected"
    return customer


def registration(customer: Customer) -> set[str]:
    """The thumbprints on the customer's app registration, as the sandbox holds them."""
    app = customer.admin.get_application(customer.tenant_id, customer.application_id)
    return {c["thumbprint"].upper() for c in app["certificates"]}


def token_requests(sandbox: Any) -> int:
    return sum(1 for e in sandbox.admin.requests()["value"] if e["target"] == "token")


def test_the_timer_starts_a_renewal_when_the_certificate_enters_the_window(
    app: RunningApp, sandbox: Any
) -> None:
    customer = expiring(app, sandbox)
    health_check.run(app.context)
    account = customer.current()
    rotation = account["rotation"]
    assert rotation is not None and rotation["status"] == "awaiting_upload"
    assert rotation["renewal"] == "manual"
    assert key_status(app, rotation["key"]["keyId"]) == 200
    # The warning names the certificate to upload and where to download it.
    expiry = check(account["lastVerification"], "certificate_expiry")
    assert expiry["status"] == "warn"
    assert rotation["key"]["thumbprint"] in expiry["detail"]
    assert f"/api/keys/{rotation['key']['keyId']}?format=cer" in expiry["remediation"]
    # The history says why, and that the timer did it.
    started = [e for e in events_of(customer) if e["type"] in ("certificate_expiring",
                                                                "rotation_started")]  # fmt: skip
    assert [e["type"] for e in started] == ["certificate_expiring", "rotation_started"]
    assert {e["actor"]["kind"] for e in started} == {"timer"}
    # The next run starts no second one.
    health_check.run(app.context)
    assert customer.current()["rotation"]["key"]["keyId"] == rotation["key"]["keyId"]


def test_automatic_renewal_completes_with_no_customer_action(app: RunningApp, sandbox: Any) -> None:
    customer = expiring(app, sandbox, certificateRenewal="automatic")
    old = customer.current()
    # Real Entra takes a while to accept a new certificate.
    customer.admin.update_tenant(customer.tenant_id, certificate_propagation_seconds=3)

    health_check.run(app.context)
    account = customer.current()
    rotation = account["rotation"]
    new_thumbprint = rotation["key"]["thumbprint"]
    assert rotation["renewal"] == "automatic"
    assert rotation["appRegistration"]["addKey"] == "done"
    assert registration(customer) == {old["thumbprint"], new_thumbprint}
    # Not accepted yet: still connected with the old key, the rotation open.
    assert account["status"] == "connected"
    assert account["keyId"] == old["keyId"]
    assert rotation["status"] == "awaiting_upload"
    used_by = {
        c["thumbprint"]: c["usedBy"]
        for c in account["lastVerification"]["appRegistration"]["certificates"]
    }
    assert used_by == {old["thumbprint"]: "this-account", new_thumbprint: "rotation"}

    time.sleep(3.2)
    health_check.run(app.context)
    account = customer.current()
    assert account["status"] == "connected"
    assert account["thumbprint"] == new_thumbprint
    assert account["rotation"]["status"] == "completed"
    assert account["lastVerification"]["rotation"]["status"] == "completed"
    assert check(account["lastVerification"], "certificate_expiry")["status"] == "pass"

    # After the retirement window the app removes the old certificate and deletes its key.
    health_check.run(app.context, now=utc_now() + timedelta(days=7, minutes=1))
    assert registration(customer) == {new_thumbprint}
    assert key_status(app, old["keyId"]) == 404
    assert not private_key_exists(app, old["keyId"])
    rotation = customer.current()["rotation"]
    assert rotation["appRegistration"] == {"addKey": "done", "removeKey": "done"}
    assert customer.verify()["status"] == "connected"
    types = [e["type"] for e in events_of(customer)]
    assert types.count("rotation_completed") == 1


def test_a_refusing_app_management_policy_leaves_the_rotation_open_with_graphs_words(
    app: RunningApp, sandbox: Any
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    customer.verify()
    customer.admin.set_certificate_policy(customer.tenant_id, 180)
    patched = app.http.patch(
        app.api(f"/accounts/{customer.account['id']}"), json={"certificateRenewal": "automatic"}
    )
    assert patched.status_code == 200
    rotation = start(customer)  # 365 days, as the key it replaces: over the policy's 180
    assert rotation["status"] == "awaiting_upload"
    assert rotation["appRegistration"]["addKey"] == "refused"
    assert "CredentialInvalidLifetimeAsPerAppPolicy" in rotation["detail"]
    assert "by hand" in rotation["detail"]
    assert rotation["key"]["thumbprint"] not in registration(customer)
    # The timer does not hammer Graph with the same refusal, and the manual path stays open.
    health_check.run(app.context)
    assert rotation_now(customer)["appRegistration"]["addKey"] == "refused"
    customer.admin.set_certificate_policy(customer.tenant_id, None)
    download = app.http.get(app.api(f"/keys/{rotation['key']['keyId']}"), params={"format": "cer"})
    customer.admin.upload_certificate(customer.tenant_id, customer.application_id, download.content)
    customer.verify()
    assert customer.current()["keyId"] == rotation["key"]["keyId"]


def test_graph_down_for_add_key_is_tried_again_by_the_timer(app: RunningApp, sandbox: Any) -> None:
    customer = Customer(app, sandbox).register()
    customer.generate_key()
    customer.upload_certificate()
    customer.connect(certificateRenewal="automatic")
    customer.verify()
    sandbox.admin.add_fault("graph", 503, path="addKey", retry_after=0)
    try:
        rotation = start(customer)
    finally:
        sandbox.admin.clear_faults()
    assert rotation["appRegistration"]["addKey"] == "pending"
    assert "tries again" in rotation["detail"]
    health_check.run(app.context)
    assert rotation_now(customer)["appRegistration"]["addKey"] == "done"
    assert rotation["key"]["thumbprint"] in registration(customer)


def test_a_rotation_adds_one_token_request_and_none_once_finished(
    app: RunningApp, sandbox: Any
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    customer.verify()
    health_check.run(app.context)  # warm: the token is cached from here on
    sandbox.admin.reset_requests()
    health_check.run(app.context)
    baseline = token_requests(sandbox)
    assert baseline == 0

    new_key = start(customer)["key"]
    sandbox.admin.reset_requests()
    health_check.run(app.context)
    assert token_requests(sandbox) == baseline + 1  # the new key, not accepted yet

    download = app.http.get(app.api(f"/keys/{new_key['keyId']}"), params={"format": "cer"})
    customer.admin.upload_certificate(customer.tenant_id, customer.application_id, download.content)
    sandbox.admin.reset_requests()
    health_check.run(app.context)  # the switch: the new key's token replaces the old one's
    assert token_requests(sandbox) == 1
    assert customer.current()["keyId"] == new_key["keyId"]
    sandbox.admin.reset_requests()
    health_check.run(app.context)
    assert token_requests(sandbox) == 0  # finished: the new key's cached token, nothing more


def test_switching_automatic_renewal_on_takes_over_a_manual_rotation(
    app: RunningApp, sandbox: Any
) -> None:
    customer = Customer(app, sandbox).link_all_the_way()
    customer.verify()
    rotation = start(customer)
    assert rotation["renewal"] == "manual" and rotation["appRegistration"] is None
    patched = app.http.patch(
        app.api(f"/accounts/{customer.account['id']}"),
        json={"certificateRenewal": "automatic"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    taken_over = patched.json()["rotation"]
    assert taken_over["renewal"] == "automatic"
    assert taken_over["appRegistration"] == {"addKey": "done", "removeKey": None}
    assert rotation["key"]["thumbprint"] in registration(customer)
    customer.verify()
    assert customer.current()["keyId"] == rotation["key"]["keyId"]
