"""Certificate renewal on the reference page, in headless Chromium against the sandbox tenant.

A customer linked and connected opens the account's certificate renewal: Renew shows the new
certificate awaiting upload with a download that is that certificate, a second Renew shows the
409's detail, the sandbox panel uploads the new certificate, Verify switches the account to it,
the sandbox panel removes the old one and the account stays connected. Then the Automatic
renewal switch: a change made elsewhere meanwhile makes the PATCH a 412 that the page explains
and reloads; the next toggle is stored. Under automatic renewal, Renew has the app add the new
certificate to its registration itself, and Cancel ends it (the key gone, the certificate taken
back).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import PortalHost, chromium_page
from tests.e2e.customer import GLOBAL_READER, PERMISSION

pytestmark = pytest.mark.browser

NAME = "Contoso production"
VERIFY_TIMEOUT = 60_000  # ms


def wait_idle(page: Page) -> None:
    """The page runs one action at a time (`aria-busy` on body); a click while busy is ignored."""
    expect(page.locator("body")).not_to_have_attribute("aria-busy", "true")


def linked_and_connected(portal_host: PortalHost, sandbox: Any) -> dict[str, Any]:
    """A customer who followed the guide and pressed Connect (through the API: quicker)."""
    api = f"{portal_host.url}/api"
    domain = f"contoso{uuid.uuid4().hex[:6]}.onmicrosoft.com"
    tenant_id = sandbox.admin.create_tenant("Contoso", domains=[domain])["tenantId"]
    app_id = sandbox.admin.create_application(tenant_id, "Governance portal")["appId"]
    sandbox.admin.set_permissions(tenant_id, app_id, [PERMISSION])
    sandbox.admin.set_directory_roles(tenant_id, app_id, [GLOBAL_READER])
    key = requests.post(
        f"{api}/keys",
        json={"tenantId": tenant_id, "applicationId": app_id, "displayName": NAME},
        timeout=30,
    ).json()
    sandbox.admin.upload_certificate(tenant_id, app_id, key["certificatePem"])
    account: dict[str, Any] = requests.post(
        f"{api}/accounts",
        json={"displayName": NAME, "tenantId": tenant_id, "applicationId": app_id,
              "keyId": key["keyId"]},
        timeout=30,
    ).json()  # fmt: skip
    report = requests.post(f"{api}/accounts/{account['id']}/verify", timeout=60).json()
    assert report["status"] == "connected", report
    return account


def stored(portal_host: PortalHost, account_id: str) -> dict[str, Any]:
    response = requests.get(f"{portal_host.url}/api/accounts/{account_id}", timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def thumbprints_on(sandbox: Any, account: dict[str, Any]) -> list[str]:
    app = sandbox.admin.get_application(account["tenantId"], account["applicationId"])
    return sorted(c["thumbprint"] for c in app["certificates"])


def test_a_customer_renews_the_certificate_on_the_page(
    portal_host: PortalHost, sandbox: Any, tmp_path: Path
) -> None:
    account = linked_and_connected(portal_host, sandbox)
    account_id, old = account["id"], account["thumbprint"]
    with chromium_page(tmp_path) as page:
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(portal_host.url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        row = page.locator(f'#accounts tr[data-account-id="{account_id}"]')
        expect(row).to_have_attribute("data-status", "connected")

        # --- the account's certificate renewal: manual, none yet -----------------------------
        row.get_by_role("button", name=f"Certificate renewal of {NAME}").click()
        panel = page.locator("#renewal-section")
        expect(panel).to_be_visible()
        expect(page.locator("#renewal-heading")).to_have_text(f"Certificate renewal: {NAME}")
        expect(page.locator("#renewal-heading")).to_be_focused()
        expect(page.locator("#renewal-current-thumbprint")).to_have_text(old)
        switch = page.get_by_role("switch", name="Automatic renewal")
        expect(switch).not_to_be_checked()
        expect(panel.locator("#rotation-none")).to_contain_text("No renewal yet")
        expect(page.locator("#sb-renewal-target")).to_contain_text(account["applicationId"])

        # --- Renew: awaiting upload, the new thumbprint and its download ----------------------
        wait_idle(page)
        page.get_by_role("button", name="Renew certificate").click()
        status = page.locator("#rotation-status")
        expect(status).to_have_text("Awaiting upload")
        expect(page.locator("#rotation-heading")).to_be_focused()
        rotation = stored(portal_host, account_id)["rotation"]
        new = rotation["key"]["thumbprint"]
        assert new != old
        expect(page.locator("#rotation-thumbprint")).to_have_text(new)
        expect(page.locator("#rotation-previous-thumbprint")).to_have_text(old)
        detail = page.locator("#rotation-detail")
        expect(detail).to_contain_text(f"Upload the new certificate {new}")
        expect(row).to_contain_text("Renewal: Awaiting upload")
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download new certificate").click()
        download = download_info.value
        assert download.failure() is None
        saved = tmp_path / "new.cer"
        download.save_as(saved)
        der = saved.read_bytes()
        assert hashlib.sha1(der, usedforsecurity=False).hexdigest().upper() == new
        assert b"PRIVATE KEY" not in der

        # --- Renew pressed twice: the 409's detail --------------------------------------------
        wait_idle(page)
        page.get_by_role("button", name="Renew certificate").click()
        errors = page.locator("#errors")
        expect(errors).to_be_visible()
        expect(errors).to_contain_text("already in progress")
        expect(status).to_have_text("Awaiting upload")
        assert stored(portal_host, account_id)["rotation"]["key"]["thumbprint"] == new

        # --- the admin center stand-in: upload the new certificate ----------------------------
        wait_idle(page)
        page.get_by_role("button", name="Upload the new certificate").click()
        result = page.locator("#sb-result")
        expect(result).to_have_attribute("data-outcome", "ok")
        expect(result).to_contain_text(new)
        expect(errors).to_be_hidden()
        assert thumbprints_on(sandbox, account) == sorted([old, new])

        # --- Verify: the account switches to the new certificate ------------------------------
        wait_idle(page)
        page.get_by_role("button", name="Verify now").click()
        report = page.locator("#report")
        expect(report).to_have_attribute("data-status", "connected", timeout=VERIFY_TIMEOUT)
        expect(report.locator("#report-rotation")).to_have_attribute("data-status", "completed")
        expect(status).to_have_text("Completed")
        expect(page.locator("#renewal-current-thumbprint")).to_have_text(new)
        expect(page.locator("#rotation-retires")).to_be_visible()
        expect(page.locator("#rotation-cancel")).to_have_count(0)
        expect(report.locator(f'#app-certificates tr[data-thumbprint="{new}"]')).to_contain_text(
            "This account"
        )
        expect(report.locator(f'#app-certificates tr[data-thumbprint="{old}"]')).to_contain_text(
            "Previous"
        )
        switched = stored(portal_host, account_id)
        assert switched["thumbprint"] == new and switched["rotation"]["status"] == "completed"
        assert switched["rotation"]["retiresAt"]

        # --- remove the old certificate: still connected, with the new one ---------------------
        wait_idle(page)
        page.get_by_role("button", name="Remove the old certificate").click()
        expect(result).to_have_text(f"Old certificate removed (thumbprint {old}).")
        assert thumbprints_on(sandbox, account) == [new]
        wait_idle(page)
        row.get_by_role("button", name=f"Re-verify {NAME}").click()
        expect(report.locator('[data-check-id="certificate"]')).to_have_attribute(
            "data-status", "pass", timeout=VERIFY_TIMEOUT
        )
        expect(report).to_have_attribute("data-status", "connected")

        # --- Automatic renewal: a change elsewhere first makes the switch a 412 ---------------
        renamed = "Contoso (renamed)"
        wait_idle(page)  # the Re-verify's reload of the panel is done: it shows this version
        changed = requests.patch(
            f"{portal_host.url}/api/accounts/{account_id}",
            json={"displayName": renamed},
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        switch.click()
        expect(errors).to_be_visible()
        expect(errors).to_contain_text("The account changed")
        expect(errors).to_contain_text("Automatic renewal was not changed")
        expect(page.locator("#renewal-heading")).to_have_text(f"Certificate renewal: {renamed}")
        expect(switch).not_to_be_checked()  # what is stored, reloaded
        assert stored(portal_host, account_id)["certificateRenewal"] == "manual"

        wait_idle(page)
        switch.click()
        expect(page.locator("#status")).to_have_text(
            f"Automatic renewal is on for {renamed}.", timeout=5_000
        )
        expect(switch).to_be_checked()
        expect(errors).to_be_hidden()
        assert stored(portal_host, account_id)["certificateRenewal"] == "automatic"
        expect(row).to_contain_text("Automatic renewal")

        # --- Renew under automatic renewal: the app adds the certificate; then Cancel ----------
        wait_idle(page)
        page.get_by_role("button", name="Renew certificate").click()
        expect(status).to_have_text("Awaiting upload")
        third = stored(portal_host, account_id)["rotation"]["key"]
        expect(page.locator("#rotation-thumbprint")).to_have_text(third["thumbprint"])
        expect(page.locator("#rotation-app-registration")).to_have_attribute("data-add-key", "done")
        expect(detail).to_contain_text("The app added the new certificate")
        assert thumbprints_on(sandbox, account) == sorted([new, third["thumbprint"]])

        wait_idle(page)
        page.get_by_role("button", name="Cancel renewal").click()
        expect(status).to_have_text("Cancelled")
        expect(detail).to_contain_text("Cancelled")
        expect(page.get_by_role("button", name="Cancel renewal")).to_have_count(0)
        expect(page.get_by_role("link", name="Download new certificate")).to_have_count(0)
        expect(page.locator("#renewal-current-thumbprint")).to_have_text(new)
        after = stored(portal_host, account_id)
        assert after["rotation"]["status"] == "cancelled" and after["thumbprint"] == new
        gone = requests.get(f"{portal_host.url}/api/keys/{third['keyId']}", timeout=10)
        assert gone.status_code == 404
        assert thumbprints_on(sandbox, account) == [new]

        # The history names the renewal's steps as the user took them.
        wait_idle(page)
        row.get_by_role("button", name=f"Show history of {renamed}").click()
        history = page.locator("#history")
        expect(history.locator('[data-event-type="rotation_completed"]')).to_contain_text(
            "Certificate renewed"
        )
        expect(history.locator('[data-event-type="rotation_cancelled"]')).to_have_count(1)
        assert page_errors == [], page_errors
