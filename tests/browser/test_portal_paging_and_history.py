"""The reference page follows the list's nextLink and shows an account's history."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import PortalHost, chromium_page
from tests.contract.test_account_store import T0, account_for, key

pytestmark = pytest.mark.browser


def test_the_page_shows_more_accounts_and_an_accounts_history(
    portal_host: PortalHost, sandbox: Any, tmp_path: Path
) -> None:
    store = portal_host.context.accounts
    for n in range(104):  # older than the one linked below, through the store (quick)
        k = key("local-dev")
        store.add_key(k)
        store.link(account_for(k, created=T0 - timedelta(seconds=n)))
    made = requests.post(
        f"{portal_host.url}/api/keys",
        json={"tenantId": str(uuid.uuid4()), "applicationId": str(uuid.uuid4()),
              "displayName": "Fabrikam"},
        timeout=30,
    ).json()  # fmt: skip
    linked = requests.post(
        f"{portal_host.url}/api/accounts",
        json={"displayName": "Fabrikam", "tenantId": made["tenantId"],
              "applicationId": made["applicationId"], "keyId": made["keyId"]},
        timeout=30,
    ).json()  # fmt: skip
    with chromium_page(tmp_path) as page:
        page.goto(portal_host.url + "/")
        rows = page.locator("#accounts tr")
        expect(rows).to_have_count(100)
        more = page.locator("#accounts-more")
        expect(more).to_be_visible()
        more.click()
        expect(rows).to_have_count(105)
        expect(more).to_be_hidden()
        row = page.locator(f'[data-account-id="{linked["id"]}"]')
        row.get_by_role("button", name="Show history of Fabrikam").click()
        history = page.locator("#history li")
        expect(history).to_have_count(1)
        expect(history.first).to_have_attribute("data-event-type", "linked")
        expect(history.first).to_contain_text("by user local-dev")
        expect(page.locator("#history-heading")).to_have_text("History: Fabrikam")
