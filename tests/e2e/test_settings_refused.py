"""Settings refused at start-up: the import-time check logs the problem before any request, and
every route, health included, then answers a 500 problem naming the setting, never its value."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import requests

from localdev.host import LocalHost
from shared.app.bootstrap import check_settings_at_import, get_context, set_context
from shared.core.settings import SettingsInvalid

ACCOUNT_KEY = "S3cr3tAccountKey-7d41=="
REFUSED_IN_AZURE = {
    "WEBSITE_INSTANCE_ID": "0123abcd",
    "AUTH_MODE": "local",
    "KEY_VAULT_URL": "https://kv-m365link.vault.azure.net",
    "ACCOUNTS_STORAGE": f"DefaultEndpointsProtocol=http;AccountName=st;AccountKey={ACCOUNT_KEY}",
}


@pytest.fixture
def refused_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("ACCOUNTS_STORAGE__tableServiceUri", "AUTH_AUDIENCE", "AUTH_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in REFUSED_IN_AZURE.items():
        monkeypatch.setenv(name, value)
    set_context(None)
    yield
    set_context(None)


def test_refused_settings_are_logged_at_import_and_every_route_names_them(
    refused_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="m365link.settings"):
        check_settings_at_import()  # what each function module runs when the host imports it
    logged = [r.getMessage() for r in caplog.records if r.name == "m365link.settings"]
    assert len(logged) == 1 and "AUTH_MODE=local is refused in Azure" in logged[0]
    assert "ACCOUNTS_STORAGE is refused in Azure" in logged[0]
    assert ACCOUNT_KEY not in logged[0]
    with pytest.raises(SettingsInvalid):
        get_context()

    host = LocalHost()
    url = host.start()
    try:
        some_id = str(uuid.uuid4())
        for method, path in (
            ("GET", "/api/health"),
            ("GET", "/api/accounts"),
            ("POST", "/api/keys"),
            ("GET", f"/api/keys/{some_id}"),
            ("POST", f"/api/accounts/{some_id}/verify"),
            ("GET", "/api/onboarding"),
        ):
            answer = requests.request(method, url + path, json={}, timeout=10)
            assert answer.status_code == 500, (path, answer.text)
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert "AUTH_MODE=local is refused in Azure" in answer.json()["detail"], path
            assert ACCOUNT_KEY not in answer.text
    finally:
        host.stop()
