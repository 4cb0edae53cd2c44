"""The reference portal page in headless Chromium, end to end against the sandbox tenant.

A first-time customer: the cloud-selection screen, Microsoft 365, the form, a real certificate
download, the upload in the sandbox panel (the page's stand-in for the Entra admin center),
Connect with every check passing and the app registration's certificate shown as this account's,
then a client secret and a multi-tenant audience set in the sandbox panel and Re-verify showing
both warnings, then consent revoked and Re-verify showing the failed check with its remediation.
Along the way: the accessibility basics the page promises.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from playwright.sync_api import Page, expect

from tests.browser.conftest import PortalHost, chromium_page
from tests.e2e.customer import GLOBAL_READER, PERMISSION

pytestmark = pytest.mark.browser

DISPLAY_NAME = "Contoso production"
CHECKS = 12
VERIFY_TIMEOUT = 60_000  # ms: Connect = link + verify against the sandbox


def wait_idle(page: Page) -> None:
    """The page runs one action at a time (`aria-busy` on body); a click while busy is ignored."""
    expect(page.locator("body")).not_to_have_attribute("aria-busy", "true")


def unlabelled_controls(page: Page) -> list[str]:
    result: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'hidden')
            .filter((el) => {
              const byLabel = [...(el.labels || [])].some((l) => l.textContent.trim());
              const byAria = (el.getAttribute('aria-label') || '').trim()
                || (el.getAttribute('aria-labelledby') || '').split(/\\s+/).some(
                  (id) => id && document.getElementById(id)?.textContent.trim());
              return !byLabel && !byAria;
            })
            .map((el) => el.id || el.name || el.outerHTML.slice(0, 80))"""
    )
    return result


def test_first_time_customer_links_microsoft_365(
    portal_host: PortalHost, sandbox: Any, tmp_path: Path
) -> None:
    with chromium_page(tmp_path) as page:
        walk_the_linking_flow(page, portal_host, sandbox, tmp_path)


def walk_the_linking_flow(
    page: Page, portal_host: PortalHost, sandbox: Any, tmp_path: Path
) -> None:
    # The sandbox demo tenant and app, registered as the guide asks: admin consent and the
    # Global Reader role, no certificate yet.
    organisation = f"contoso{uuid.uuid4().hex[:6]}.onmicrosoft.com"
    tenant_id = sandbox.admin.create_tenant("Contoso", domains=[organisation])["tenantId"]
    application_id = sandbox.admin.create_application(tenant_id, "Governance portal")["appId"]
    sandbox.admin.set_permissions(tenant_id, application_id, [PERMISSION])
    sandbox.admin.set_directory_roles(tenant_id, application_id, [GLOBAL_READER])
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    # --- first visit: the cloud-selection screen --------------------------------------------
    page.goto(portal_host.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("body")).to_have_attribute("data-view", "onboarding")
    expect(page.locator("#view-title")).to_have_text("Choose your cloud to get started")
    expect(page.get_by_role("button", name="Select AWS")).to_be_disabled()
    expect(page.get_by_role("button", name="Select Azure")).to_be_disabled()
    expect(page.locator("#sandbox")).to_be_visible()  # the host proxies the sandbox admin API
    assert unlabelled_controls(page) == [], "every input has a label"

    page.get_by_role("button", name="Microsoft 365 – get started").click()
    expect(page.locator("#link-heading")).to_be_focused()

    # --- the form, filled through its labels -------------------------------------------------
    page.get_by_label("Friendly name").fill(DISPLAY_NAME)
    page.get_by_label("Tenant ID").fill(tenant_id)
    page.get_by_label("Application ID").fill(application_id)
    page.get_by_label("Organisation name").fill(organisation)
    expect(page.locator("#sb-target")).to_contain_text(application_id)

    # --- Generate public key & Download: a real download --------------------------------------
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Generate public key & Download").click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith(".cer"), download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    expect(page.locator("#key-info")).to_be_visible()
    expect(page.locator("#key-heading")).to_be_focused()
    shown_thumbprint = page.locator("#thumbprint").inner_text().strip()

    der = saved.read_bytes()
    certificate = x509.load_der_x509_certificate(der)
    thumbprint = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    assert thumbprint == shown_thumbprint
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert any(DISPLAY_NAME in str(cn.value) for cn in common_names), certificate.subject
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)
    assert certificate.not_valid_after_utc > datetime.now(UTC)
    assert b"PRIVATE KEY" not in der

    # --- the admin center stand-in: upload the certificate ------------------------------------
    wait_idle(page)
    page.locator("#sb-upload").click()
    expect(page.locator("#sb-result")).to_have_attribute("data-outcome", "ok")
    expect(page.locator("#sb-result")).to_contain_text(thumbprint)
    uploaded = sandbox.admin.get_application(tenant_id, application_id)
    assert [c["thumbprint"] for c in uploaded["certificates"]] == [thumbprint]

    # --- Connect: linked and verified, every check passes --------------------------------------
    wait_idle(page)
    page.get_by_role("button", name="Connect").click()
    report = page.locator("#report")
    expect(report).to_have_attribute("data-status", "connected", timeout=VERIFY_TIMEOUT)
    expect(report.locator('[data-check-id][data-status="pass"]')).to_have_count(CHECKS)
    expect(report.locator("[data-check-id]")).to_have_count(CHECKS)
    expect(page.locator("#report-heading")).to_be_focused()
    expect(page.locator("#report-heading")).to_contain_text(DISPLAY_NAME)
    account_id = report.get_attribute("data-report-for")
    assert account_id
    row = page.locator(f'#accounts tr[data-account-id="{account_id}"]')
    expect(row).to_have_attribute("data-status", "connected")
    expect(page.locator("body")).to_have_attribute("data-view", "integrations")

    # The app registration as the report shows it: this account's certificate, no secret.
    certificates = report.locator("#app-certificates tbody tr")
    expect(certificates).to_have_count(1)
    mine = report.locator(f'#app-certificates tr[data-thumbprint="{thumbprint}"]')
    expect(mine).to_have_attribute("data-used-by", "this-account")
    expect(mine).to_contain_text("This account")
    expect(report.locator("#app-secrets")).to_have_attribute("data-count", "0")
    expect(report.locator("#app-audience")).to_contain_text("Single tenant")

    # --- a client secret and a multi-tenant audience in the admin center, then Re-verify -------
    wait_idle(page)
    page.locator("#sb-audience").select_option("AzureADMultipleOrgs")
    page.locator("#sb-set-audience").click()
    expect(page.locator("#sb-result")).to_contain_text("Multi-tenant")
    expect(page.locator("#sb-result")).to_have_attribute("data-outcome", "ok")
    wait_idle(page)
    page.locator("#sb-add-secret").click()
    expect(page.locator("#sb-result")).to_contain_text("Client secret added")
    expect(page.locator("#sb-result")).to_have_attribute("data-outcome", "ok")
    registration = sandbox.admin.get_application(tenant_id, application_id)
    assert registration["signInAudience"] == "AzureADMultipleOrgs"
    assert len(registration["passwordCredentials"]) == 1

    wait_idle(page)
    page.get_by_role("button", name=f"Re-verify {DISPLAY_NAME}").click()
    expect(report.locator('[data-check-id="app_credentials"]')).to_have_attribute(
        "data-status", "warn", timeout=VERIFY_TIMEOUT
    )
    expect(report).to_have_attribute("data-status", "connected")  # warnings only
    expect(report.locator('[data-check-id][data-status="warn"]')).to_have_count(2)
    audience = report.locator('[data-check-id="app_audience"]')
    expect(audience).to_have_attribute("data-status", "warn")
    expect(audience.locator(".check-remediation")).to_contain_text("Supported account types")
    secret = report.locator('[data-check-id="app_credentials"]')
    expect(secret.locator(".check-detail")).to_contain_text("anyone holding that secret")
    expect(report.locator("#app-secrets")).to_have_attribute("data-count", "1")
    expect(report.locator("#app-audience")).to_contain_text("Multi-tenant")

    wait_idle(page)
    page.locator("#sb-remove-secrets").click()
    expect(page.locator("#sb-result")).to_have_text("Client secrets removed (1).")
    wait_idle(page)
    page.locator("#sb-audience").select_option("AzureADMyOrg")
    page.locator("#sb-set-audience").click()
    expect(page.locator("#sb-result")).to_contain_text("Single tenant")
    registration = sandbox.admin.get_application(tenant_id, application_id)
    assert registration["signInAudience"] == "AzureADMyOrg"
    assert registration["passwordCredentials"] == []

    # --- consent revoked in the admin center, then Re-verify -----------------------------------
    wait_idle(page)
    page.locator("#sb-revoke").click()
    expect(page.locator("#sb-result")).to_have_text("Admin consent revoked.")
    expect(page.locator("#sb-result")).to_have_attribute("data-outcome", "ok")
    assert sandbox.admin.get_application(tenant_id, application_id)["permissions"] in (
        [],
        {"roles": []},
    )

    wait_idle(page)
    page.get_by_role("button", name=f"Re-verify {DISPLAY_NAME}").click()
    expect(report).to_have_attribute("data-status", "action_required", timeout=VERIFY_TIMEOUT)
    consent = report.locator('[data-check-id="admin_consent"]')
    expect(consent).to_have_attribute("data-status", "fail")
    remediation = consent.locator(".check-remediation")
    expect(remediation).to_be_visible()
    expect(page.locator("#report-heading")).to_be_focused()
    expect(row).to_have_attribute("data-status", "action_required")

    # The remediation shown is the one the API returned for the check.
    stored = requests.get(f"{portal_host.url}/api/accounts/{account_id}", timeout=10).json()
    check = next(c for c in stored["lastVerification"]["checks"] if c["id"] == "admin_consent")
    assert check["status"] == "fail" and check["remediation"]
    expect(remediation).to_contain_text(check["remediation"])

    assert unlabelled_controls(page) == [], "every input has a label, after the flow too"
    assert page_errors == [], page_errors
    screenshot = tmp_path / "portal-flow.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
