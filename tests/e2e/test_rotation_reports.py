"""What a verification says about a renewal once it is over (issue 18, item 4), on both account
stores against the sandbox tenant:

- the replaced certificate is `usedBy: "previous"` only while its key exists; once the timer has
  retired (deleted) the key, the certificate still on the registration is nobody's: `other`;
- the verification that switched to the new certificate reports the rotation `completed` and its
  `certificate_expiry` check no longer asks for the upload it has just seen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import check
from tests.e2e.test_renewal_switch import patch_renewal
from tests.e2e.test_rotation import app, connected, key_status, start, upload

__all__ = ["app"]  # the store-parametrised fixture, shared with test_rotation


def used_by(report: dict[str, Any]) -> dict[str, str]:
    return {c["thumbprint"]: c["usedBy"] for c in report["appRegistration"]["certificates"]}


def test_the_replaced_certificate_is_previous_only_until_its_key_is_retired(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = customer.current()
    new_key = start(customer)["key"]
    upload(customer, new_key["keyId"])
    switched = customer.verify()
    assert customer.current()["keyId"] == new_key["keyId"]
    assert used_by(switched)[old["thumbprint"]] == "previous"
    # Inside the retirement window it stays "previous" (the key still answers).
    assert used_by(customer.verify())[old["thumbprint"]] == "previous"

    health_check.run(app.context, now=utc_now() + timedelta(days=7, minutes=1))
    assert key_status(app, old["keyId"]) == 404
    # The customer has not removed the old certificate yet: it is on the registration, but no
    # key of this app stands behind it any more.
    report = customer.verify()
    assert report["status"] == "connected"
    assert used_by(report) == {new_key["thumbprint"]: "this-account", old["thumbprint"]: "other"}


def test_the_verification_that_switches_no_longer_asks_for_the_upload(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = customer.current()
    new_key = start(customer)["key"]
    download = f"/api/keys/{new_key['keyId']}?format=cer"
    waiting = check(customer.verify(), "certificate_expiry")
    assert "upload certificate" in waiting["detail"] and download in waiting["detail"]

    upload(customer, new_key["keyId"])
    report = customer.verify()
    assert report["rotation"]["status"] == "completed"
    expiry = check(report, "certificate_expiry")
    assert expiry["status"] == "pass"
    assert "in progress" not in expiry["detail"]
    assert "upload certificate" not in expiry["detail"].lower()
    assert download not in expiry["detail"]
    # It says what happened and what is left to do by hand (a manual renewal): remove the old one.
    assert f"accepted the renewed certificate {new_key['thumbprint']}" in expiry["detail"]
    assert f"Remove the previous certificate {old['thumbprint']}" in expiry["detail"]
    # The next verification, with the rotation completed, says nothing of it any more.
    later = check(customer.verify(), "certificate_expiry")
    assert later["status"] == "pass" and new_key["thumbprint"] not in later["detail"]


def test_a_renewal_handed_over_after_the_app_added_it_asks_for_no_upload(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    # Entra is slow to accept the new certificate, so the rotation stays awaiting its switch.
    customer.admin.update_tenant(customer.tenant_id, certificate_propagation_seconds=3600)
    patch_renewal(customer, "automatic")
    new_key = start(customer)["key"]
    assert customer.current()["rotation"]["appRegistration"]["addKey"] == "done"
    patch_renewal(customer, "manual")
    report = customer.verify()
    assert report["rotation"]["status"] == "awaiting_upload"
    expiry = check(report, "certificate_expiry")
    assert "upload certificate" not in expiry["detail"].lower()
    assert f"{new_key['thumbprint']} is already on the app registration" in expiry["detail"]
