"""A renewal that fails to start changes nothing.

A renewal started while the key the last one replaced is still in its retirement window retires
that key (and, with automatic renewal, removes its certificate from the app registration), but
only once the new rotation is written: if the start fails (here the key store cannot make the new
key: Key Vault answers 503 to `create`), the rollback key still answers, stays in the vault, and
neither the account nor the customer's tenant changed. Under `vault-key` custody, on both account
stores, manual and automatic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.keystore.vault_common import vault_name
from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import faulted
from tests.e2e.test_renewal_switch import graph_writes, patch_renewal, switched_over
from tests.e2e.test_renewal_timer import registration
from tests.e2e.test_rotation import connected, key_status, start, table_settings, upload


@pytest.fixture(params=["sqlite", "table"])
def settings(request: pytest.FixtureRequest, sandbox: Any) -> dict[str, str]:
    env = {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": "vault-key"}
    if request.param == "table":
        env.update(table_settings(request.getfixturevalue("azurite")))
    return env


@pytest.fixture
def start_app(
    sandboxed_app: Callable[..., RunningApp], settings: dict[str, str]
) -> Callable[..., RunningApp]:
    return lambda **more: sandboxed_app({**settings, **more}, vault_credential=StaticCredential())


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def in_vault(sandbox: Any, key_id: str) -> bool:
    return vault_name(key_id) in {k["name"] for k in sandbox.admin.keyvault_keys()["keys"]}


@pytest.mark.parametrize("renewal", ["manual", "automatic"])
def test_a_start_the_key_store_fails_keeps_the_previous_key_and_changes_nothing(
    app: RunningApp, sandbox: Any, renewal: str
) -> None:
    customer = connected(app, sandbox)
    patch_renewal(customer, renewal)
    first = start(customer)
    if renewal == "manual":
        upload(customer, first["key"]["keyId"])
    switched_over(customer)
    before = customer.current()
    previous = before["rotation"]["previousKeyId"]
    previous_thumbprint = before["rotation"]["previousThumbprint"]
    assert key_status(app, previous) == 200  # in its retirement window
    assert previous_thumbprint in registration(customer)
    sandbox.admin.reset_requests()

    path = app.api(f"/accounts/{customer.account['id']}/rotation")
    with faulted(sandbox, "keyvault", 503, path="/create", retry_after=0):
        refused = app.http.post(path, json={})
    assert refused.status_code == 503, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"

    # Nothing changed: the rollback key answers and is still in the vault, the account and its
    # rotation are as they were, and nothing was written in the customer's tenant.
    assert key_status(app, previous) == 200
    assert in_vault(sandbox, previous)
    assert customer.current() == before
    assert graph_writes(sandbox) == []
    assert previous_thumbprint in registration(customer)

    # With the key store back, the start goes through and only then retires the previous key.
    second = start(customer)
    assert key_status(app, previous) == 404
    assert not in_vault(sandbox, previous)
    if renewal == "automatic":
        assert graph_writes(sandbox) == ["addKey", "removeKey"]
        assert registration(customer) == {before["thumbprint"], second["key"]["thumbprint"]}
        assert f"{previous_thumbprint} was removed from the app registration" in second["detail"]
    else:
        assert graph_writes(sandbox) == []


def test_a_renewal_the_timer_fails_to_start_keeps_the_previous_key(
    start_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    # A retirement window longer than the time to the next renewal window: the timer starts the
    # next renewal while the key the last one replaced is still kept.
    timer_app = start_app(KEY_RETIREMENT_DAYS="90")
    customer = connected(timer_app, sandbox)
    new_key = start(customer, validityDays=60)["key"]
    upload(customer, new_key["keyId"])
    before = switched_over(customer)
    previous = before["rotation"]["previousKeyId"]
    inside_the_window = utc_now() + timedelta(days=45)  # 15 of the new key's 60 days left

    with faulted(sandbox, "keyvault", 503, path="/create", retry_after=0):
        health_check.run(timer_app.context, now=inside_the_window)
    assert key_status(timer_app, previous) == 200
    assert in_vault(sandbox, previous)
    assert customer.current()["rotation"] == before["rotation"]

    health_check.run(timer_app.context, now=inside_the_window)
    assert customer.current()["rotation"]["status"] == "awaiting_upload"
    assert key_status(timer_app, previous) == 404
