"""Automatic certificate renewal end to end with the private keys in (the stand-in of) Key Vault,
as non-exportable keys (`vault-key`: Key Vault signs every proof and assertion) and as secrets
(`vault-secret`): the timer starts the renewal, addKey's proof is signed by the current key where
it lives, the account switches, and after the retirement window removeKey takes the old
certificate off the app registration and the old key is deleted from the vault. Also unlink
during a rotation, which deletes both keys from the vault."""

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
from tests.e2e.test_renewal_timer import expiring, registration
from tests.e2e.test_rotation import connected, key_status, start, upload


@pytest.fixture(params=["vault-key", "vault-secret"])
def custody(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any, custody: str) -> RunningApp:
    return sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": custody},
        vault_credential=StaticCredential(),
    )


def vault(sandbox: Any, custody: str) -> tuple[set[str], set[str]]:
    """(live, deleted) names the vault holds for this custody, as the stand-in sees them."""
    if custody == "vault-key":
        state = sandbox.admin.keyvault_keys()
        return {k["name"] for k in state["keys"]}, {k["name"] for k in state["deletedKeys"]}
    state = sandbox.admin.keyvault_state()
    return {s["name"] for s in state["secrets"]}, {s["name"] for s in state["deletedSecrets"]}


def signs(sandbox: Any, key_id: str) -> int:
    """How many `sign` operations Key Vault answered with this key (vault-key)."""
    name = vault_name(key_id)
    found = [k["signs"] for k in sandbox.admin.keyvault_keys()["keys"] if k["name"] == name]
    assert found, f"{name} is not in the vault"
    return int(found[0])


def sign_requests(sandbox: Any, key_id: str) -> list[dict[str, Any]]:
    """The Key Vault requests that asked this key for a signature."""
    prefix = f"/keys/{vault_name(key_id)}/"
    return [
        r
        for r in sandbox.admin.keyvault_keys()["requests"]
        if r["method"] == "POST" and r["path"].startswith(prefix) and r["path"].endswith("/sign")
    ]


def test_automatic_renewal_signs_in_the_vault_switches_and_retires_from_the_vault(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    customer = expiring(app, sandbox, certificateRenewal="automatic")
    old = customer.current()
    assert app.http.get(app.api(f"/keys/{old['keyId']}")).json()["custody"] == custody
    assert vault_name(old["keyId"]) in vault(sandbox, custody)[0]
    # The verification above left a token of the current key cached: the timer's sign-in for
    # addKey reuses it, so the only thing the current key signs in this run is addKey's proof.
    before = signs(sandbox, old["keyId"]) if custody == "vault-key" else 0
    sandbox.admin.reset_requests()

    health_check.run(app.context)
    account = customer.current()
    rotation = account["rotation"]
    new = rotation["key"]
    assert rotation["renewal"] == "automatic" and new["custody"] == custody
    assert rotation["appRegistration"] == {"addKey": "done", "removeKey": "pending"}
    assert registration(customer) >= {old["thumbprint"], new["thumbprint"]}
    # Entra accepted it at once here (no propagation delay): the account switched in this run.
    assert rotation["status"] == "completed"
    assert (account["keyId"], account["thumbprint"]) == (new["keyId"], new["thumbprint"])
    assert account["status"] == "connected"
    assert vault_name(new["keyId"]) in vault(sandbox, custody)[0]
    graph_writes = [
        r["path"]
        for r in sandbox.admin.requests()["value"]
        if r["target"] == "graph" and r["method"] == "POST" and r["path"].endswith("/addKey")
    ]
    assert len(graph_writes) == 1
    if custody == "vault-key":
        # The proof of possession was signed by Key Vault with the current (old) key: one
        # signature, and the SDK sent only a digest, never key material.
        assert signs(sandbox, old["keyId"]) == before + 1
        (proof,) = sign_requests(sandbox, old["keyId"])
        assert proof["status"] == 200
        assert proof["body"]["alg"] in ("RS256", "PS256")
        assert set(proof["body"]) == {"alg", "value"}

    # Inside the retirement window the old key is still in the vault and usable.
    health_check.run(app.context, now=utc_now() + timedelta(days=6))
    assert key_status(app, old["keyId"]) == 200
    assert vault_name(old["keyId"]) in vault(sandbox, custody)[0]

    # After it: removeKey (its proof signed by the new key, in the vault) and the old key gone.
    signed_by_new = signs(sandbox, new["keyId"]) if custody == "vault-key" else 0
    health_check.run(app.context, now=utc_now() + timedelta(days=8))
    assert registration(customer) == {new["thumbprint"]}
    rotation = customer.current()["rotation"]
    assert rotation["appRegistration"] == {"addKey": "done", "removeKey": "done"}
    assert rotation["previousRetiredAt"] is not None
    assert key_status(app, old["keyId"]) == 404
    live, deleted = vault(sandbox, custody)
    assert vault_name(old["keyId"]) not in live
    assert vault_name(old["keyId"]) in deleted  # soft-deleted, as Key Vault keeps it
    assert vault_name(new["keyId"]) in live
    if custody == "vault-key":
        assert signs(sandbox, new["keyId"]) == signed_by_new + 1  # removeKey's proof
    assert customer.verify()["status"] == "connected"  # the new key goes on signing in


def test_unlink_during_a_rotation_deletes_both_keys_from_the_vault(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    customer = connected(app, sandbox)
    old_key = customer.current()["keyId"]
    new_key = start(customer)["key"]["keyId"]
    live, _ = vault(sandbox, custody)
    assert {vault_name(old_key), vault_name(new_key)} <= live
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    live, deleted = vault(sandbox, custody)
    for key_id in (old_key, new_key):
        assert key_status(app, key_id) == 404
        assert vault_name(key_id) not in live
        assert vault_name(key_id) in deleted
    assert not any(r.deleting for r in app.context.accounts.list_keys())  # nothing left to do


def test_unlink_after_the_switch_deletes_the_replaced_key_from_the_vault(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    customer = expiring(app, sandbox, certificateRenewal="automatic")
    old_key = customer.current()["keyId"]
    health_check.run(app.context)  # renews and switches (no propagation delay)
    new_key = customer.current()["keyId"]
    assert new_key != old_key
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    live, deleted = vault(sandbox, custody)
    for key_id in (old_key, new_key):
        assert vault_name(key_id) not in live and vault_name(key_id) in deleted


def test_the_vault_down_for_the_old_key_at_retirement_is_finished_by_the_next_run(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    customer = expiring(app, sandbox, certificateRenewal="automatic")
    old_key = customer.current()["keyId"]
    health_check.run(app.context)
    new = customer.current()["rotation"]["key"]
    later = utc_now() + timedelta(days=8)
    # Only the old key's own vault object fails: the new key still signs removeKey's proof.
    objects = "keys" if custody == "vault-key" else "secrets"
    with faulted(sandbox, "keyvault", 503, path=f"/{objects}/{vault_name(old_key)}"):
        health_check.run(app.context, now=later)
        assert registration(customer) == {new["thumbprint"]}  # removeKey went through
        assert key_status(app, old_key) == 404  # no longer usable by anyone
        pending = app.context.accounts.get_key("local-dev", old_key)
        assert pending is not None and pending.deleting  # recorded for the retry
        assert vault_name(old_key) in vault(sandbox, custody)[0]
    health_check.run(app.context, now=later)
    assert app.context.accounts.get_key("local-dev", old_key) is None
    live, deleted = vault(sandbox, custody)
    assert vault_name(old_key) not in live and vault_name(old_key) in deleted
    assert customer.current()["rotation"]["appRegistration"]["removeKey"] == "done"
    assert customer.verify()["status"] == "connected"


def test_a_renewal_started_inside_the_retirement_window_leaves_no_key_behind(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    # Renewed by hand and switched; a second renewal starts before the first one's replaced
    # key is retired (a key to replace again at once, say). The first key must not be
    # forgotten: bound to the account with no rotation naming it, no timer or unlink would
    # ever delete it, and its private key would stay in the vault for good.
    customer = connected(app, sandbox)
    first = customer.current()["keyId"]
    second = start(customer)["key"]["keyId"]
    upload(customer, second)
    customer.verify()
    assert customer.current()["keyId"] == second
    third = start(customer)["key"]["keyId"]
    assert key_status(app, first) == 404  # retired early: the account is on its next key
    assert vault_name(first) not in vault(sandbox, custody)[0]
    assert key_status(app, second) == 200  # the current key, still signing in
    assert customer.verify()["status"] == "connected"
    assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    live, deleted = vault(sandbox, custody)
    for key_id in (first, second, third):
        assert vault_name(key_id) not in live and vault_name(key_id) in deleted, key_id
    assert list(app.context.accounts.list_keys()) == []


def test_automatic_renewal_started_inside_the_retirement_window_removes_the_old_certificate(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    customer = expiring(app, sandbox, certificateRenewal="automatic")
    first = customer.current()
    health_check.run(app.context)  # renewed and switched; the first key in its window
    second = customer.current()
    assert second["rotation"]["appRegistration"]["removeKey"] == "pending"
    third = start(customer)["key"]
    # The app took the first certificate off the registration (it said it would) and added
    # the third; the second, the account's current one, stays.
    assert registration(customer) == {second["thumbprint"], third["thumbprint"]}
    assert key_status(app, first["keyId"]) == 404
    assert vault_name(first["keyId"]) not in vault(sandbox, custody)[0]
    assert customer.verify()["status"] == "connected"
