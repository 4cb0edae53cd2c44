"""The timer's renewal upkeep never works from a stale read: every Graph write (addKey, removeKey)
and every retirement is decided on the account as the store holds it at that moment, and a write
that raced a customer's change leaves a truthful state.

The interleavings are forced, not timed: either the timer's own read is taken, the customer acts,
and the upkeep then runs with that read (what a timer run does between `take_due` and the
upkeep), or the customer acts from a hook of the app's HTTP session that runs when Graph's answer
to addKey arrives: after the write landed in the tenant, before the app records it. On both
account stores."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from shared.renewal import renew as renewal
from shared.support.deadline import deadline
from shared.support.timefmt import utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer
from tests.e2e.test_renewal_switch import (
    AFTER_RETIREMENT,
    automatic_with_add_key_pending,
    graph_writes,
    patch_renewal,
    switched_over,
)
from tests.e2e.test_renewal_timer import registration
from tests.e2e.test_rotation import connected, key_status, rotation_now, start, table_settings

OWNER = "local-dev"  # AUTH_MODE=local


@pytest.fixture(params=["sqlite", "table"])
def app(request: pytest.FixtureRequest, sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    if request.param == "sqlite":
        return sandboxed_app()
    return sandboxed_app(table_settings(request.getfixturevalue("azurite")))


@contextmanager
def when_graph_answers(
    app: RunningApp, operation: str, action: Callable[[], Any]
) -> Iterator[list[Any]]:
    """Run `action` once, in the app's own thread, when Graph's answer to the app's first
    `operation` (addKey, removeKey) arrives: the write has landed, the app has not recorded it.
    Yields what `action` returned (empty if it never ran)."""
    results: list[Any] = []
    once = threading.Lock()  # taken for good by the first answer (others pass, whatever thread)

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method != "POST" or not str(request.url).endswith(operation):
            return
        if once.acquire(blocking=False):
            results.append(action())

    app.context.http.hooks["response"].append(hook)
    try:
        yield results
    finally:
        app.context.http.hooks["response"].remove(hook)


def cancel(customer: Customer) -> int:
    path = customer.app.api(f"/accounts/{customer.account['id']}/rotation")
    return customer.app.http.delete(path).status_code


def timer_read(app: RunningApp, customer: Customer) -> Any:
    """The account as a timer run reads it when it takes the account."""
    account = app.context.accounts.get_account(OWNER, customer.account["id"])
    assert account is not None
    return account


def test_a_cancel_while_add_key_lands_takes_the_certificate_back(
    app: RunningApp, sandbox: Any
) -> None:
    customer = automatic_with_add_key_pending(app, sandbox)
    new_key = rotation_now(customer)["key"]
    sandbox.admin.reset_requests()

    with when_graph_answers(app, "/addKey", lambda: cancel(customer)) as cancels:
        health_check.run(app.context)  # the upkeep tries the pending addKey again
    assert cancels == [204]

    # The certificate the addKey put on the registration was taken off again...
    assert graph_writes(sandbox) == ["addKey", "removeKey"]
    assert new_key["thumbprint"] not in registration(customer)
    # ...and the cancelled rotation says what happened, nothing about a switch to come.
    rotation = rotation_now(customer)
    assert rotation["status"] == "cancelled"
    assert rotation["appRegistration"] == {"addKey": "done", "removeKey": None}
    assert rotation["detail"].startswith("Cancelled")
    assert f"{new_key['thumbprint']} was removed from the app registration" in rotation["detail"]
    assert "switches" not in rotation["detail"]
    assert key_status(app, new_key["keyId"]) == 404
    assert customer.current()["keyId"] != new_key["keyId"]


def test_a_switch_to_manual_while_add_key_lands_is_recorded_as_it_happened(
    app: RunningApp, sandbox: Any
) -> None:
    customer = automatic_with_add_key_pending(app, sandbox)
    new_key = rotation_now(customer)["key"]
    # Entra is slow to accept the new certificate: the rotation stays open after this run.
    customer.admin.update_tenant(customer.tenant_id, certificate_propagation_seconds=600)
    sandbox.admin.reset_requests()

    def manual() -> dict[str, Any]:
        return patch_renewal(customer, "manual")

    with when_graph_answers(app, "/addKey", manual) as patched:
        health_check.run(app.context)
    assert len(patched) == 1

    assert graph_writes(sandbox) == ["addKey"]  # the write that was on its way, nothing after
    assert new_key["thumbprint"] in registration(customer)
    rotation = rotation_now(customer)
    assert rotation["status"] == "awaiting_upload"
    assert rotation["renewal"] == "manual"
    # The customer is told the truth: it is on the registration, nothing to upload.
    assert "nothing to upload" in rotation["detail"]
    assert new_key["thumbprint"] in rotation["detail"]


def test_upkeep_from_a_read_older_than_a_cancel_writes_nothing(
    app: RunningApp, sandbox: Any
) -> None:
    customer = automatic_with_add_key_pending(app, sandbox)
    new_key = rotation_now(customer)["key"]
    stale = timer_read(app, customer)
    assert cancel(customer) == 204
    cancelled = rotation_now(customer)
    sandbox.admin.reset_requests()

    with deadline(30):
        renewal.upkeep(app.context, stale)
    assert graph_writes(sandbox) == []
    assert new_key["thumbprint"] not in registration(customer)
    assert rotation_now(customer) == cancelled  # nothing was written over the cancel


def test_retirement_from_a_read_older_than_a_switch_to_manual_removes_nothing(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = patch_renewal(customer, "automatic")
    start(customer)
    switched_over(customer)
    stale = timer_read(app, customer)
    assert stale.rotation is not None and stale.rotation.remove_key == "pending"
    patch_renewal(customer, "manual")
    sandbox.admin.reset_requests()

    with deadline(30):
        renewal.upkeep(app.context, stale, utc_now() + AFTER_RETIREMENT)
    assert graph_writes(sandbox) == []
    assert old["thumbprint"] in registration(customer)
    assert key_status(app, old["keyId"]) == 404  # retired all the same
    assert "by hand" in rotation_now(customer)["detail"]
