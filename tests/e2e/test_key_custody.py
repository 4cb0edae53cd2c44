"""Key custody end to end (API.md "Key custody"): under `vault-key` no private key exists outside
Key Vault, not even in the app; keys of every custody keep working side by side after the
setting changes; a warm timer run makes no Key Vault call. The vault down during a verification is
in test_verify_hardening.py, during a Connect's key or an unlink in test_keys_in_key_vault.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest

from shared.app.bootstrap import build_context, set_context
from shared.core.settings import load_settings
from shared.timer import run as health_check
from tests.conftest import SEEN, RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import Customer, statuses

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture
def vault_app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> RunningApp:
    return sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url}, vault_credential=StaticCredential()
    )


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_the_whole_flow_under_vault_key_keeps_every_private_key_in_the_vault(
    vault_app: RunningApp, sandbox: Any
) -> None:
    customer = Customer(vault_app, sandbox).register()
    key = customer.generate_key()
    assert key["custody"] == "vault-key"  # the default once KEY_VAULT_URL is set
    assert vault_app.http.get(vault_app.api(f"/keys/{key['keyId']}")).json()["custody"] == (
        "vault-key"
    )
    customer.upload_certificate("cer")
    customer.connect()
    report = customer.verify()
    assert report["status"] == "connected", statuses(report)

    # The client assertion Entra accepted was signed by the vault key: RS256 + x5t, made of
    # one Key Vault `sign` (the certificate took the other).
    state = sandbox.admin.keyvault_keys()
    (held,) = state["keys"]
    assert held["name"] == f"m365link-{key['keyId']}" and held["signs"] == 2
    assert sorted(held["keyOps"]) == ["sign", "verify"]
    assert sandbox.admin.keyvault_state()["secrets"] == []  # no secret was ever written
    sent = [r for r in state["requests"] if r["authorized"]]
    assert {r["method"] for r in sent} <= {"POST", "GET"}
    assert not [r for r in sent if r["path"].startswith("/secrets")]

    # Nothing on disk, in any answer, log line or vault answer holds key material.
    state_dir = vault_app.context.settings.local_state_dir
    for path in files_under(state_dir):
        assert path.suffix != ".pem" and b"PRIVATE KEY" not in path.read_bytes(), path
    for _, _, _, body in SEEN.responses:
        assert b"PRIVATE KEY" not in body
    vault_answers = json.dumps(state)
    for member in PRIVATE_JWK_MEMBERS:
        assert f'"{member}":' not in vault_answers

    # Unlink deletes the key in the vault (soft delete keeps it recoverable).
    assert (
        vault_app.http.delete(vault_app.api(f"/accounts/{customer.account['id']}")).status_code
        == 204
    )
    state = sandbox.admin.keyvault_keys()
    assert state["keys"] == [] and [k["name"] for k in state["deletedKeys"]] == [held["name"]]
    assert vault_app.http.get(vault_app.api(f"/keys/{key['keyId']}")).status_code == 404


def test_the_assertion_names_the_certificate_and_is_signed_by_the_vault(
    vault_app: RunningApp, sandbox: Any
) -> None:
    customer = Customer(vault_app, sandbox).link_all_the_way()
    assertions: list[str] = []

    def keep(response: Any, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        text = body.decode() if isinstance(body, bytes) else body or ""
        if "client_assertion=" in text:
            assertions.extend(parse_qs(text)["client_assertion"])

    vault_app.context.http.hooks["response"].append(keep)
    assert customer.verify()["status"] == "connected"
    (assertion,) = assertions
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256"
    thumbprint = base64.urlsafe_b64decode(header["x5t"] + "=" * (-len(header["x5t"]) % 4))
    assert thumbprint.hex().upper() == customer.key["thumbprint"]
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["iss"] == claims["sub"] == customer.application_id
    assert claims["aud"].endswith(f"/{customer.tenant_id}/oauth2/v2.0/token")
    assert claims["exp"] - claims["nbf"] <= 600


def test_keys_of_every_custody_keep_working_after_the_setting_changes(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any, tmp_path: Path
) -> None:
    customers: dict[str, Customer] = {}
    for custody, env in (
        ("local", {}),
        ("vault-secret", {"KEY_VAULT_URL": sandbox.keyvault_url, "KEY_CUSTODY": "vault-secret"}),
        ("vault-key", {"KEY_VAULT_URL": sandbox.keyvault_url}),
    ):
        app = sandboxed_app(env, vault_credential=StaticCredential())
        customer = Customer(app, sandbox).link_all_the_way()
        assert customer.key["custody"] == custody
        customers[custody] = customer
    # The app as it runs now (vault-key), one store of accounts for all three.
    app = sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url}, vault_credential=StaticCredential()
    )
    for custody, customer in customers.items():
        customer.app = app
        key = app.http.get(app.api(f"/keys/{customer.key['keyId']}")).json()
        assert key["custody"] == custody
        report = customer.verify()
        assert report["status"] == "connected", (custody, statuses(report))
    # The timer verifies all three too (a fresh instance: every token is signed anew).
    fresh = build_context(
        load_settings(
            {
                "AUTH_MODE": "local",
                "LOCAL_STATE_DIR": str(app.context.settings.local_state_dir),
                "KEY_VAULT_URL": sandbox.keyvault_url,
                "HEALTH_CHECK_INTERVAL_HOURS": "0",  # verified a moment ago, due again
                **sandbox.app_settings(),
            }
        ),
        vault_credential=StaticCredential(),
    )
    set_context(fresh)
    summary = health_check.run(fresh, account_seconds=20)
    assert summary.checked == 3 and summary.by_status["connected"] == 3
    # Unlink removes each key from where it lives.
    for customer in customers.values():
        assert app.http.delete(app.api(f"/accounts/{customer.account['id']}")).status_code == 204
    assert sandbox.admin.keyvault_keys()["keys"] == []
    assert sandbox.admin.keyvault_state()["secrets"] == []
    local = app.context.settings.local_state_dir / "keys"
    assert not [p for p in files_under(local) if p.suffix == ".pem"]


def test_a_warm_timer_run_makes_no_key_vault_call(vault_app: RunningApp, sandbox: Any) -> None:
    fleet = [Customer(vault_app, sandbox).link_all_the_way() for _ in range(3)]
    cold = health_check.run(vault_app.context, account_seconds=20)
    assert cold.by_status["connected"] == 3
    sandbox.admin.reset_requests()
    warm = health_check.run(vault_app.context, account_seconds=20)
    assert warm.by_status["connected"] == 3
    counts = sandbox.admin.requests()["counts"]
    keys_api = [
        r
        for r in sandbox.admin.keyvault_keys()["requests"]
        if r["authorized"] and "/m365link-" in r["path"]
    ]
    assert counts.get("token", 0) == 0  # cached tokens reused
    assert keys_api == []  # so no `sign`, and no key read
    assert all(c.current()["status"] == "connected" for c in fleet)
