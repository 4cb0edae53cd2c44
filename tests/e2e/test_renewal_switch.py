"""Switching automatic renewal on and off hands a rotation between the app and the customer.

The app writes to a customer's tenant (Graph addKey / removeKey) only while the account's
`certificateRenewal` is `automatic`. Switching it on takes a rotation over (its addKey at once,
its removeKey at retirement); switching it off hands the rotation over to the customer: the
writes still pending are dropped and the rotation's `detail` says what to do by hand. Both
directions, before and after the switch-over, on both account stores, with the Graph writes
observed where they land: the sandbox tenant's request record and its app registration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, faulted
from tests.e2e.test_renewal_timer import registration
from tests.e2e.test_rotation import (
    connected,
    key_status,
    rotation_now,
    start,
    table_settings,
    upload,
)

AFTER_RETIREMENT = timedelta(days=7, minutes=1)


@pytest.fixture(params=["sqlite", "table"])
def app(request: pytest.FixtureRequest, sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    if request.param == "sqlite":
        return sandboxed_app()
    return sandboxed_app(table_settings(request.getfixturevalue("azurite")))


def graph_writes(sandbox: Any) -> list[str]:
    """The app's writes in customers' tenants since the last reset, as the sandbox received
    them: `addKey` / `removeKey`, in order."""
    return [
        entry["path"].rsplit("/", 1)[-1]
        for entry in sandbox.admin.requests()["value"]
        if entry["target"] == "graph"
        and entry["method"] == "POST"
        and entry["path"].endswith(("/addKey", "/removeKey"))
    ]


def patch_renewal(customer: Customer, renewal: str) -> dict[str, Any]:
    response = customer.app.http.patch(
        customer.app.api(f"/accounts/{customer.account['id']}"),
        json={"certificateRenewal": renewal},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    account: dict[str, Any] = response.json()
    assert account["certificateRenewal"] == renewal
    return account


def automatic_with_add_key_pending(app: RunningApp, sandbox: Any) -> Customer:
    """A connected automatic account whose rotation's addKey is still to do (Graph was down)."""
    customer = connected(app, sandbox)
    patch_renewal(customer, "automatic")
    with faulted(sandbox, "graph", 503, path="addKey", retry_after=0):
        rotation = start(customer)
    assert rotation["appRegistration"] == {"addKey": "pending", "removeKey": None}
    return customer


def switched_over(customer: Customer) -> dict[str, Any]:
    """The account after the verification that switches it to its rotation's key."""
    rotation = rotation_now(customer)
    assert customer.verify()["status"] == "connected"
    account = customer.current()
    assert account["keyId"] == rotation["key"]["keyId"]
    assert account["rotation"]["status"] == "completed"
    return account


def test_switching_off_before_the_switch_over_drops_the_pending_add_key(
    app: RunningApp, sandbox: Any
) -> None:
    customer = automatic_with_add_key_pending(app, sandbox)
    old = customer.current()
    new_key = old["rotation"]["key"]
    sandbox.admin.reset_requests()

    rotation = patch_renewal(customer, "manual")["rotation"]
    assert graph_writes(sandbox) == []  # the PATCH itself wrote nothing in the tenant
    assert new_key["thumbprint"] not in registration(customer)
    assert rotation["status"] == "awaiting_upload"
    assert rotation["renewal"] == "manual" and rotation["appRegistration"] is None
    # The detail tells the customer what to do by hand: the certificate and where to get it.
    assert "switched off" in rotation["detail"]
    assert new_key["thumbprint"] in rotation["detail"]
    assert f"/api/keys/{new_key['keyId']}?format=cer" in rotation["detail"]

    health_check.run(app.context)  # the timer does not add it either
    assert graph_writes(sandbox) == []
    assert new_key["thumbprint"] not in registration(customer)

    # The customer's upload switches the account; at retirement nothing is removed for them.
    upload(customer, new_key["keyId"])
    switched_over(customer)
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert graph_writes(sandbox) == []
    assert old["thumbprint"] in registration(customer)
    assert key_status(app, old["keyId"]) == 404


def test_switching_off_after_the_switch_over_leaves_the_removal_to_the_customer(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = patch_renewal(customer, "automatic")
    rotation = start(customer)
    assert rotation["appRegistration"] == {"addKey": "done", "removeKey": None}
    switched = switched_over(customer)
    assert switched["rotation"]["appRegistration"] == {"addKey": "done", "removeKey": "pending"}

    sandbox.admin.reset_requests()
    handed_over = patch_renewal(customer, "manual")["rotation"]
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert graph_writes(sandbox) == []  # no removeKey once automatic renewal is off
    assert old["thumbprint"] in registration(customer)
    assert key_status(app, old["keyId"]) == 404  # the key itself retires as always
    assert rotation_now(customer)["previousRetiredAt"] is not None
    # The PATCH's answer told the customer that the removal is theirs now, and which one.
    assert handed_over["status"] == "completed" and handed_over["renewal"] == "manual"
    assert "switched off" in handed_over["detail"] and "by hand" in handed_over["detail"]
    assert old["thumbprint"] in handed_over["detail"]


def test_switching_on_before_the_switch_over_takes_over_the_add_key(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    rotation = start(customer)
    assert rotation["renewal"] == "manual" and rotation["appRegistration"] is None
    sandbox.admin.reset_requests()

    taken_over = patch_renewal(customer, "automatic")["rotation"]
    assert graph_writes(sandbox) == ["addKey"]
    assert taken_over["renewal"] == "automatic"
    assert taken_over["appRegistration"] == {"addKey": "done", "removeKey": None}
    assert rotation["key"]["thumbprint"] in registration(customer)
    switched_over(customer)


def test_switching_on_after_the_switch_over_takes_over_the_remove_key(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = customer.current()
    new_key = start(customer)["key"]
    upload(customer, new_key["keyId"])
    switched_over(customer)
    sandbox.admin.reset_requests()

    taken_over = patch_renewal(customer, "automatic")["rotation"]
    assert graph_writes(sandbox) == []  # nothing to do before the retirement
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert graph_writes(sandbox) == ["removeKey"]
    assert registration(customer) == {new_key["thumbprint"]}
    assert key_status(app, old["keyId"]) == 404
    assert rotation_now(customer)["appRegistration"] == {"addKey": None, "removeKey": "done"}
    # The PATCH's answer said the app would remove it.
    assert taken_over["renewal"] == "automatic"
    assert taken_over["appRegistration"] == {"addKey": None, "removeKey": "pending"}
    assert old["thumbprint"] in taken_over["detail"]


def test_off_and_on_again_before_the_switch_over_adds_the_certificate_once(
    app: RunningApp, sandbox: Any
) -> None:
    customer = automatic_with_add_key_pending(app, sandbox)
    new_key = customer.current()["rotation"]["key"]
    sandbox.admin.reset_requests()
    patch_renewal(customer, "manual")
    assert graph_writes(sandbox) == []
    rotation = patch_renewal(customer, "automatic")["rotation"]
    assert graph_writes(sandbox) == ["addKey"]
    assert rotation["appRegistration"] == {"addKey": "done", "removeKey": None}
    assert new_key["thumbprint"] in registration(customer)
    # Off again once it was added: nothing to upload, and nothing is taken off the tenant.
    rotation = patch_renewal(customer, "manual")["rotation"]
    assert "nothing to upload" in rotation["detail"]
    assert graph_writes(sandbox) == ["addKey"]
    switched_over(customer)
