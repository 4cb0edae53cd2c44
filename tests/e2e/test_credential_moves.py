"""Moving an account between credentials (API.md, "Moving an account between credentials"): a
certificate account moved to a federated credential and back, by hand and with automatic
renewal, against the sandbox tenant on both account stores. The start answers the new key with
its federation; the account goes on signing in with the old credential until Entra accepts the
new one; the verification that finds it accepted switches credential, thumbprint and
certificateNotAfter in one write; the replaced key retires after KEY_RETIREMENT_DAYS (with
automatic renewal the app removes a replaced certificate from the app registration, and never
adds or removes a federated credential itself); the events name the kinds. The timer never
starts a renewal for a federated account, and never fails a move to one for expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.support.timefmt import from_rfc3339, utc_now
from shared.timer import run as health_check
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, check, faulted
from tests.e2e.test_renewal_switch import graph_writes, patch_renewal
from tests.e2e.test_renewal_timer import registration
from tests.e2e.test_rotation import (
    connected,
    events_of,
    key_status,
    private_key_exists,
    rotation_now,
    start,
    table_settings,
    upload,
)

AFTER_RETIREMENT = timedelta(days=7, minutes=1)  # KEY_RETIREMENT_DAYS (7) and a minute


@pytest.fixture(params=["sqlite", "table"])
def app(request: pytest.FixtureRequest, sandboxed_app: Callable[..., RunningApp]) -> RunningApp:
    if request.param == "sqlite":
        return sandboxed_app()
    return sandboxed_app(table_settings(request.getfixturevalue("azurite")))


def start_answer(customer: Customer, body: Any) -> Any:
    return customer.app.http.post(
        customer.app.api(f"/accounts/{customer.account['id']}/rotation"), json=body
    )


def credential_json(customer: Customer, key_id: str) -> dict[str, Any]:
    response = customer.app.http.get(customer.app.api(f"/keys/{key_id}"), params={"format": "json"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def add_federated(customer: Customer, key_id: str) -> None:
    """The customer adds the downloaded credential, as `az ad app federated-credential create`."""
    customer.admin.add_federated_credential(
        customer.tenant_id, customer.application_id, credential_json(customer, key_id)
    )


def federated_subjects(customer: Customer) -> set[str]:
    listed = customer.admin.federated_credentials(customer.tenant_id, customer.application_id)
    return {c["subject"] for c in listed}


def moved_to_federated(customer: Customer, rotation: dict[str, Any]) -> dict[str, Any]:
    """The start answered a new federated credential bound to the account; nothing switched yet.
    Its federation as the key resource has it."""
    key = rotation["key"]
    assert rotation["status"] == "awaiting_upload"
    assert key["kind"] == "federated" and key["accountId"] == customer.account["id"]
    assert key["expiresAt"] is None and key["thumbprint"] is None and key["notAfter"] is None
    federation = key["federation"]
    assert federation["issuer"] == customer.app.context.settings.oidc_issuer
    assert federation["audience"] == "api://AzureADTokenExchange"
    stored = customer.app.http.get(customer.app.api(f"/keys/{key['keyId']}")).json()
    assert stored["federation"] == federation
    # The detail says what to add, where, and the az command with the download.
    for said in (federation["subject"], federation["issuer"], federation["name"]):
        assert said in rotation["detail"]
    assert "az ad app federated-credential create" in rotation["detail"]
    assert f"/api/keys/{key['keyId']}?format=json" in rotation["detail"]
    return key


def still_on(customer: Customer, old: dict[str, Any]) -> None:
    """Entra does not know the new credential yet: the account signs in with the old one."""
    report = customer.verify()
    account = customer.current()
    assert report["status"] == "connected"
    assert (account["keyId"], account["credential"]) == (old["keyId"], old["credential"])
    assert report["rotation"]["status"] == "awaiting_upload"


def switched(customer: Customer, key: dict[str, Any]) -> dict[str, Any]:
    """The verification that finds the new credential accepted switches the account to it."""
    report = customer.verify()
    account = customer.current()
    assert report["status"] == "connected"
    assert check(report, "certificate")["status"] == "pass"
    assert report["rotation"]["status"] == "completed"
    assert account["keyId"] == key["keyId"]
    assert account["credential"] == key["kind"]
    assert account["thumbprint"] == key["thumbprint"]  # None for a federated credential
    assert account["certificateNotAfter"] == key["notAfter"]
    assert account["rotation"]["status"] == "completed"
    return account


def retired_after_the_window(app: RunningApp, customer: Customer, old_key_id: str) -> None:
    """The replaced key answers until KEY_RETIREMENT_DAYS have passed, then is gone."""
    health_check.run(app.context, now=utc_now() + timedelta(days=6))
    assert key_status(app, old_key_id) == 200
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert key_status(app, old_key_id) == 404
    assert not private_key_exists(app, old_key_id)
    assert rotation_now(customer)["previousRetiredAt"] is not None
    assert customer.verify()["status"] == "connected"  # the new credential goes on working


def event_details(customer: Customer, kind: str) -> list[str]:
    return [e.get("detail") or "" for e in events_of(customer) if e["type"] == kind]


def test_a_certificate_account_moves_to_federated_and_back_by_hand(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = customer.current()
    assert old["credential"] == "certificate"

    # --- to a federated credential ---------------------------------------------------------
    rotation = start(customer, kind="federated")
    assert rotation["renewal"] == "manual" and rotation["appRegistration"] is None
    federated = moved_to_federated(customer, rotation)
    subject = federated["federation"]["subject"]
    still_on(customer, old)
    add_federated(customer, federated["keyId"])
    account = switched(customer, federated)
    assert account["rotation"]["previousKeyId"] == old["keyId"]
    assert old["thumbprint"] in account["rotation"]["detail"]  # the customer removes it
    retired_after_the_window(app, customer, old["keyId"])
    assert old["thumbprint"] in registration(customer)  # by hand: the app removed nothing

    started = event_details(customer, "rotation_started")[-1]
    completed = event_details(customer, "rotation_completed")[-1]
    assert (
        f"federated credential {subject}" in started
        and f"certificate {old['thumbprint']}" in started
    )
    assert f"federated credential {subject}" in completed
    assert f"certificate {old['thumbprint']}" in completed

    # --- and back to a certificate -----------------------------------------------------------
    rotation = start(customer, kind="certificate", validityDays=200)
    certificate = rotation["key"]
    assert certificate["kind"] == "certificate" and certificate["federation"] is None
    assert abs((from_rfc3339(certificate["notAfter"]) - utc_now()).days - 200) <= 1
    assert f"/api/keys/{certificate['keyId']}?format=cer" in rotation["detail"]
    still_on(customer, customer.current())
    upload(customer, certificate["keyId"])
    account = switched(customer, certificate)
    assert subject in account["rotation"]["detail"]
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert key_status(app, federated["keyId"]) == 404
    retired = rotation_now(customer)
    # The app cannot remove a federated credential: the customer is asked to, by name.
    assert federated["federation"]["name"] in retired["detail"]
    assert subject in retired["detail"] and "federated-credential delete" in retired["detail"]
    assert subject in federated_subjects(customer)
    assert customer.verify()["status"] == "connected"
    completed = event_details(customer, "rotation_completed")[-1]
    assert f"certificate {certificate['thumbprint']}" in completed
    assert f"federated credential {subject}" in completed


def test_with_automatic_renewal_the_app_removes_the_replaced_certificate_and_adds_nothing(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = patch_renewal(customer, "automatic")
    sandbox.admin.reset_requests()

    rotation = start(customer, kind="federated")
    # No addKey: the app cannot add a federated credential (and says why).
    assert rotation["appRegistration"] == {"addKey": None, "removeKey": None}
    assert graph_writes(sandbox) == []
    assert "cannot add a federated credential" in rotation["detail"]
    federated = moved_to_federated(customer, rotation)
    health_check.run(app.context)  # nor does the timer try
    assert graph_writes(sandbox) == []
    assert customer.current()["keyId"] == old["keyId"]

    add_federated(customer, federated["keyId"])
    account = switched(customer, federated)
    assert account["rotation"]["appRegistration"] == {"addKey": None, "removeKey": "pending"}

    # At retirement the app removes the replaced certificate, the proof signed by its own key.
    health_check.run(app.context, now=utc_now() + timedelta(days=6))
    assert graph_writes(sandbox) == []
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert graph_writes(sandbox) == ["removeKey"]
    assert old["thumbprint"] not in registration(customer)
    retired = rotation_now(customer)
    assert retired["appRegistration"] == {"addKey": None, "removeKey": "done"}
    assert key_status(app, old["keyId"]) == 404
    assert customer.verify()["status"] == "connected"

    # --- back to a certificate: addKey needs a proof from a certificate the app has none of --
    sandbox.admin.reset_requests()
    rotation = start(customer, kind="certificate")
    certificate = rotation["key"]
    assert rotation["appRegistration"] == {"addKey": None, "removeKey": None}
    assert "Upload the new certificate" in rotation["detail"]
    health_check.run(app.context)
    assert graph_writes(sandbox) == []
    upload(customer, certificate["keyId"])
    account = switched(customer, certificate)
    # A replaced federated credential is never the app's to remove.
    assert account["rotation"]["appRegistration"] == {"addKey": None, "removeKey": None}
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    assert graph_writes(sandbox) == []
    assert key_status(app, federated["keyId"]) == 404
    assert federated["federation"]["subject"] in federated_subjects(customer)
    assert federated["federation"]["name"] in rotation_now(customer)["detail"]


def test_when_graph_refuses_the_removal_the_customer_is_asked_naming_the_certificate(
    app: RunningApp, sandbox: Any
) -> None:
    customer = connected(app, sandbox)
    old = patch_renewal(customer, "automatic")
    federated = start(customer, kind="federated")["key"]
    add_federated(customer, federated["keyId"])
    switched(customer, federated)
    # Graph refuses the removal (a 403, as a tenant policy might answer).
    with faulted(sandbox, "graph", 403, path="removeKey"):
        health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    retired = rotation_now(customer)
    assert retired["appRegistration"]["removeKey"] == "refused"
    assert f"Remove certificate {old['thumbprint']}" in retired["detail"]
    assert key_status(app, old["keyId"]) == 404  # the key retires either way


def test_the_timer_never_renews_a_federated_account_nor_fails_a_move_for_expiry(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app({"CERT_EXPIRY_WARNING_DAYS": "1"})
    customer = connected(app, sandbox)
    federated = start(customer, kind="federated")["key"]
    # Years later the move is still awaiting its credential: a federated one never expires.
    health_check.run(app.context, now=utc_now() + timedelta(days=3650))
    assert rotation_now(customer)["status"] == "awaiting_upload"
    add_federated(customer, federated["keyId"])
    switched(customer, federated)
    health_check.run(app.context, now=utc_now() + AFTER_RETIREMENT)
    # However far the clock goes, no renewal starts, whatever the warning window (a started one
    # would be the account's rotation now; the far clock also expires the history, so the
    # rotation is the witness).
    for years in (1, 5, 50):
        health_check.run(app.context, now=utc_now() + timedelta(days=365 * years))
        rotation = rotation_now(customer)
        assert rotation["key"]["keyId"] == federated["keyId"]
        assert rotation["status"] == "completed"
        assert customer.current()["credential"] == "federated"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "federated", "validityDays": 200}, "validityDays"),
        ({"kind": "federated", "keySize": 3072}, "keySize"),
        ({"kind": "secret"}, "kind"),
        ({"kind": "Federated"}, "kind"),
    ],
)
def test_options_that_do_not_fit_the_kind_are_400s_that_change_nothing(
    app: RunningApp, sandbox: Any, body: dict[str, Any], field: str
) -> None:
    customer = connected(app, sandbox)
    before = customer.current()
    keys = {k.key_id for k in app.context.accounts.list_keys()}
    response = start_answer(customer, body)
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert customer.current() == before
    assert {k.key_id for k in app.context.accounts.list_keys()} == keys


def test_a_federated_account_moves_to_a_new_federated_credential(
    app: RunningApp, sandbox: Any
) -> None:
    """A new federated credential for a federated account (a new subject): the default kind."""
    customer = connected(app, sandbox)
    first = start(customer, kind="federated")["key"]
    add_federated(customer, first["keyId"])
    switched(customer, first)
    second = moved_to_federated(customer, start(customer))
    assert second["federation"]["subject"] != first["federation"]["subject"]
    add_federated(customer, second["keyId"])
    switched(customer, second)
    # Cancelling is as for any rotation; a cancelled federated credential is never signed for.
    third = start(customer, kind="federated")["key"]
    response = app.http.delete(app.api(f"/accounts/{customer.account['id']}/rotation"))
    assert response.status_code == 204
    assert key_status(app, third["keyId"]) == 404
    assert third["federation"]["subject"] in rotation_now(customer)["detail"]
