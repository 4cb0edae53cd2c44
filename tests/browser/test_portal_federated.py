"""Federated credentials on the reference page, in headless Chromium against the sandbox tenant.

A customer picks "Federated credential (recommended)" on the Link form: the page shows the issuer,
subject identifier, audience and name to enter (each with a copy button), the admin-center steps,
the `az` command and a "Download .json" that is exactly that credential, and nothing to download
as a certificate. The downloaded file, added in the sandbox panel (the page's stand-in for the
Entra admin center), lets Connect pass all twelve checks; the subject's case changed there makes
the certificate check fail, naming the exact subject to enter. A certificate account moves to a
federated credential from its renewal panel: the new credential's values and download while the
move awaits the customer, then the switch; the old certificate removed, it moves back to a
certificate and the sandbox panel removes the federated credential it replaced.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Download, Page, expect

from tests.browser.conftest import PortalHost, chromium_page
from tests.e2e.customer import GLOBAL_READER, PERMISSION

pytestmark = pytest.mark.browser

NAME = "Contoso federated"
CHECKS = 12
AUDIENCE = "api://AzureADTokenExchange"
VERIFY_TIMEOUT = 60_000  # ms
CREDENTIAL_FILE_FIELDS = {"name", "issuer", "subject", "audiences", "description"}


def wait_idle(page: Page) -> None:
    """The page runs one action at a time (`aria-busy` on body); a click while busy is ignored."""
    expect(page.locator("body")).not_to_have_attribute("aria-busy", "true")


def customer_app(sandbox: Any) -> tuple[str, str, str]:
    """A tenant and single-tenant app registered as the guide asks: consent and Global Reader."""
    domain = f"contoso{uuid.uuid4().hex[:6]}.onmicrosoft.com"
    tenant_id = sandbox.admin.create_tenant("Contoso", domains=[domain])["tenantId"]
    app_id = sandbox.admin.create_application(tenant_id, "Governance portal")["appId"]
    sandbox.admin.set_permissions(tenant_id, app_id, [PERMISSION])
    sandbox.admin.set_directory_roles(tenant_id, app_id, [GLOBAL_READER])
    return tenant_id, app_id, domain


def saved_json(download: Download, folder: Path) -> tuple[Path, dict[str, Any]]:
    assert download.failure() is None
    saved = folder / download.suggested_filename
    download.save_as(saved)
    body: dict[str, Any] = json.loads(saved.read_text())
    return saved, body


def stored(portal_host: PortalHost, account_id: str) -> dict[str, Any]:
    response = requests.get(f"{portal_host.url}/api/accounts/{account_id}", timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def swapped_case(text: str) -> str:
    return text.swapcase()


def test_a_customer_links_with_a_federated_credential_on_the_page(
    portal_host: PortalHost, sandbox: Any, tmp_path: Path
) -> None:
    portal_host = portal_host
    issuer = portal_host.host.issuer_url()
    tenant_id, app_id, domain = customer_app(sandbox)
    with chromium_page(tmp_path) as page:
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        downloads: list[Download] = []
        page.on("download", lambda download: downloads.append(download))
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.goto(portal_host.url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")

        # --- the form with the federated kind: no certificate, the values to enter ------------
        page.get_by_role("button", name="Microsoft 365 – get started").click()
        page.get_by_label("Friendly name").fill(NAME)
        page.get_by_label("Tenant ID").fill(tenant_id)
        page.get_by_label("Application ID").fill(app_id)
        page.get_by_label("Organisation name").fill(domain)
        expect(page.get_by_label("Certificate", exact=True)).to_be_checked()
        page.get_by_label("Federated credential (recommended)").check()
        expect(page.get_by_role("button", name="Generate public key & Download")).to_have_count(0)
        page.get_by_role("button", name="Create federated credential").click()

        info = page.locator("#federation-info")
        expect(info).to_be_visible()
        expect(page.locator("#federation-heading")).to_be_focused()
        expect(page.locator("#key-info")).to_be_hidden()
        expect(page.locator("#federation-issuer")).to_have_text(issuer)
        expect(page.locator("#federation-audience")).to_have_text(AUDIENCE)
        subject = page.locator("#federation-subject").inner_text().strip()
        name = page.locator("#federation-name").inner_text().strip()
        assert re.fullmatch(r"[A-Za-z0-9:._-]{1,600}", subject), subject
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}", name), name
        expect(info.locator("#federation-steps")).to_contain_text(
            "Certificates & secrets › Federated credentials › Add credential"
        )
        expect(info.locator("#federation-steps")).to_contain_text("Other issuer")
        expect(page.locator("#federation-command")).to_have_text(
            f"az ad app federated-credential create --id {app_id} --parameters {name}.json"
        )
        for label in ("issuer", "subject identifier", "audience", "name"):
            expect(info.get_by_role("button", name=f"Copy {label}")).to_be_visible()
        info.get_by_role("button", name="Copy subject identifier").click()
        expect(page.locator("#status")).to_have_text("Subject identifier copied.")
        assert page.evaluate("() => navigator.clipboard.readText()") == subject
        assert downloads == [], "a federated credential downloads no certificate"

        # --- Download .json: exactly the credential shown, as Graph and `az` take it ----------
        with page.expect_download() as download_info:
            info.get_by_role("link", name="Download .json").click()
        assert download_info.value.suggested_filename == f"{name}.json"
        saved, body = saved_json(download_info.value, tmp_path)
        assert set(body) == CREDENTIAL_FILE_FIELDS, body
        assert (body["name"], body["issuer"], body["subject"], body["audiences"]) == (
            name,
            issuer,
            subject,
            [AUDIENCE],
        )

        # --- the admin center stand-in: Add federated credential from the downloaded file -----
        wait_idle(page)
        page.get_by_label("Federated credential file (.json)").set_input_files(saved)
        page.get_by_role("button", name="Add federated credential").click()
        result = page.locator("#sb-result")
        expect(result).to_have_attribute("data-outcome", "ok")
        expect(result).to_have_text(f"Federated credential {name} added (subject {subject}).")
        listed = sandbox.admin.federated_credentials(tenant_id, app_id)
        assert [(c["name"], c["issuer"], c["subject"], c["audiences"]) for c in listed] == [
            (name, issuer, subject, [AUDIENCE])
        ]
        sandboxed = page.locator(f'.sb-federated li[data-credential-name="{name}"]')
        expect(sandboxed).to_contain_text(subject)

        # --- Connect: linked and verified, every check passes ---------------------------------
        wait_idle(page)
        page.get_by_role("button", name="Connect").click()
        report = page.locator("#report")
        expect(report).to_have_attribute("data-status", "connected", timeout=VERIFY_TIMEOUT)
        expect(report.locator("[data-check-id]")).to_have_count(CHECKS)
        expect(report.locator('[data-check-id][data-status="pass"]')).to_have_count(CHECKS)
        certificate_check = report.locator('[data-check-id="certificate"]')
        expect(certificate_check).to_contain_text("federated credential")
        expect(report.locator('[data-check-id="certificate_expiry"]')).to_contain_text(
            "does not expire"
        )
        expect(report.locator("#report-credential")).to_have_text("Federated credential")
        mine = report.locator(f'#app-federated-credentials tr[data-credential-name="{name}"]')
        expect(mine).to_have_attribute("data-used-by", "this-account")
        expect(mine).to_have_attribute("data-subject", subject)
        expect(mine).to_contain_text("This account")
        account_id = report.get_attribute("data-report-for")
        assert account_id
        row = page.locator(f'#accounts tr[data-account-id="{account_id}"]')
        expect(row).to_have_attribute("data-status", "connected")
        expect(row).to_have_attribute("data-credential", "federated")
        expect(row.locator(".credential-cell")).to_contain_text("Federated credential")
        account = stored(portal_host, account_id)
        assert account["credential"] == "federated"
        assert account["thumbprint"] is None and account["certificateNotAfter"] is None

        # --- the subject in another case: the certificate check fails, naming the exact one ---
        wait_idle(page)
        sandboxed.get_by_role("button", name="Change the case of the subject").click()
        expect(result).to_have_text(f"Subject of {name} is now {swapped_case(subject)}.")
        assert sandbox.admin.federated_credentials(tenant_id, app_id)[0]["subject"] == (
            swapped_case(subject)
        )
        wait_idle(page)
        row.get_by_role("button", name=f"Re-verify {NAME}").click()
        expect(report).to_have_attribute("data-status", "action_required", timeout=VERIFY_TIMEOUT)
        expect(certificate_check).to_have_attribute("data-status", "fail")
        remediation = certificate_check.locator(".check-remediation")
        expect(remediation).to_contain_text(subject)  # case-sensitive: the subject as it must be
        expect(remediation).to_contain_text(issuer)
        expect(certificate_check.locator(".check-code")).to_contain_text(re.compile(r"70021\d*"))
        expect(row).to_have_attribute("data-status", "action_required")

        # --- the case put back: connected again ------------------------------------------------
        wait_idle(page)
        sandboxed.get_by_role("button", name="Change the case of the subject").click()
        expect(result).to_have_text(f"Subject of {name} is now {subject}.")
        wait_idle(page)
        row.get_by_role("button", name=f"Re-verify {NAME}").click()
        expect(report).to_have_attribute("data-status", "connected", timeout=VERIFY_TIMEOUT)
        expect(report.locator('[data-check-id][data-status="pass"]')).to_have_count(CHECKS)
        assert downloads[1:] == [], "only the .json was downloaded"
        assert page_errors == [], page_errors


def linked_with_a_certificate(portal_host: PortalHost, sandbox: Any) -> dict[str, Any]:
    """A customer who followed the certificate guide and pressed Connect (through the API)."""
    api = f"{portal_host.url}/api"
    tenant_id, app_id, _ = customer_app(sandbox)
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


def test_a_certificate_account_moves_to_a_federated_credential(
    portal_host: PortalHost, sandbox: Any, tmp_path: Path
) -> None:
    portal_host = portal_host
    issuer = portal_host.host.issuer_url()
    account = linked_with_a_certificate(portal_host, sandbox)
    account_id, old = account["id"], account["thumbprint"]
    with chromium_page(tmp_path) as page:
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(portal_host.url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        row = page.locator(f'#accounts tr[data-account-id="{account_id}"]')
        expect(row).to_have_attribute("data-credential", "certificate")

        # --- the renewal panel of a certificate account offers the move --------------------------
        row.get_by_role("button", name=f"Certificate renewal of {NAME}").click()
        expect(page.locator("#renewal-credential")).to_have_text("Certificate")
        expect(page.locator("#renewal-current-thumbprint")).to_have_text(old)
        expect(page.get_by_role("button", name="Move to a certificate")).to_be_hidden()
        wait_idle(page)
        page.get_by_role("button", name="Move to a federated credential").click()

        # --- awaiting the customer: the new credential's values and its download ---------------
        status = page.locator("#rotation-status")
        expect(status).to_have_text("Awaiting upload")
        heading = page.locator("#rotation-heading")
        expect(heading).to_have_text("Move to a federated credential in progress")
        expect(heading).to_be_focused()
        rotation = stored(portal_host, account_id)["rotation"]
        assert rotation["status"] == "awaiting_upload"
        key = rotation["key"]
        assert key["kind"] == "federated"
        federation = key["federation"]
        assert federation["issuer"] == issuer and federation["audience"] == AUDIENCE
        expect(page.locator("#rotation-issuer")).to_have_text(issuer)
        expect(page.locator("#rotation-subject")).to_have_text(federation["subject"])
        expect(page.locator("#rotation-audience")).to_have_text(AUDIENCE)
        expect(page.locator("#rotation-name")).to_have_text(federation["name"])
        box = page.locator("#rotation")
        for label in ("issuer", "subject identifier", "audience"):
            expect(box.get_by_role("button", name=f"Copy {label}")).to_be_visible()
        expect(page.locator("#rotation-previous-thumbprint")).to_have_text(old)
        expect(row).to_contain_text("Move to federated credential: Awaiting upload")
        with page.expect_download() as download_info:
            box.get_by_role("link", name="Download .json").click()
        assert download_info.value.suggested_filename == f"{federation['name']}.json"
        _, body = saved_json(download_info.value, tmp_path)
        assert set(body) == CREDENTIAL_FILE_FIELDS, body
        assert (body["issuer"], body["subject"], body["audiences"]) == (
            issuer,
            federation["subject"],
            [AUDIENCE],
        )

        # --- the admin center stand-in adds it; Verify switches the account --------------------
        wait_idle(page)
        page.get_by_role("button", name="Add the new federated credential").click()
        result = page.locator("#sb-result")
        expect(result).to_have_attribute("data-outcome", "ok")
        expect(result).to_contain_text(federation["subject"])
        wait_idle(page)
        page.get_by_role("button", name="Verify now").click()
        report = page.locator("#report")
        expect(report).to_have_attribute("data-status", "connected", timeout=VERIFY_TIMEOUT)
        expect(report.locator("#report-rotation")).to_have_attribute("data-status", "completed")
        expect(status).to_have_text("Completed")
        expect(heading).to_have_text("Last move to a federated credential")
        expect(page.locator("#renewal-credential")).to_have_text("Federated credential")
        expect(page.locator("#renewal-heading")).to_have_text(f"Credential: {NAME}")
        expect(page.locator("#renewal-current-subject")).to_have_text(federation["subject"])
        expect(page.get_by_role("button", name="Move to a certificate")).to_be_visible()
        expect(page.get_by_role("button", name="Renew certificate")).to_be_hidden()
        expect(page.locator("#renewal-section")).to_contain_text("nothing is ever renewed")
        expect(page.locator("#renewal-automatic")).to_be_hidden()
        expect(row).to_have_attribute("data-credential", "federated")
        new = report.locator(
            f'#app-federated-credentials tr[data-credential-name="{federation["name"]}"]'
        )
        expect(new).to_have_attribute("data-used-by", "this-account")
        expect(report.locator(f'#app-certificates tr[data-thumbprint="{old}"]')).to_contain_text(
            "Previous"
        )
        switched = stored(portal_host, account_id)
        assert switched["credential"] == "federated"
        assert switched["thumbprint"] is None and switched["certificateNotAfter"] is None
        assert switched["rotation"]["status"] == "completed"

        # --- the old certificate removed: still connected, with the federated credential -------
        wait_idle(page)
        page.get_by_role("button", name="Remove the old certificate").click()
        expect(result).to_have_text(f"Old certificate removed (thumbprint {old}).")
        assert app_registration(sandbox, account)["certificates"] == []
        wait_idle(page)
        row.get_by_role("button", name=f"Re-verify {NAME}").click()
        expect(report.locator('[data-check-id="certificate"]')).to_have_attribute(
            "data-status", "pass", timeout=VERIFY_TIMEOUT
        )
        expect(report).to_have_attribute("data-status", "connected")

        # --- and back: Move to a certificate, uploaded, verified; the federated one removed ---
        wait_idle(page)
        page.get_by_role("button", name="Move to a certificate").click()
        expect(status).to_have_text("Awaiting upload")
        expect(heading).to_have_text("Move to a certificate in progress")
        back = stored(portal_host, account_id)["rotation"]["key"]
        assert back["kind"] == "certificate"
        expect(page.locator("#rotation-thumbprint")).to_have_text(back["thumbprint"])
        expect(box.get_by_role("link", name="Download new certificate")).to_be_visible()
        wait_idle(page)
        page.get_by_role("button", name="Upload the new certificate").click()
        expect(result).to_contain_text(back["thumbprint"])
        wait_idle(page)
        page.get_by_role("button", name="Verify now").click()
        expect(status).to_have_text("Completed", timeout=VERIFY_TIMEOUT)
        expect(report).to_have_attribute("data-status", "connected")
        expect(heading).to_have_text("Last move to a certificate")
        expect(page.locator("#renewal-credential")).to_have_text("Certificate")
        expect(page.locator("#renewal-current-thumbprint")).to_have_text(back["thumbprint"])
        expect(row).to_have_attribute("data-credential", "certificate")
        wait_idle(page)
        page.get_by_role("button", name="Remove the old certificate").click()
        expect(result).to_have_text(f"Old federated credential removed ({federation['name']}).")
        assert app_registration(sandbox, account)["federatedIdentityCredentials"] == []
        moved_back = stored(portal_host, account_id)
        assert moved_back["credential"] == "certificate"
        assert moved_back["thumbprint"] == back["thumbprint"]
        assert page_errors == [], page_errors


def app_registration(sandbox: Any, account: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.admin.get_application(
        account["tenantId"], account["applicationId"]
    )
    return found
