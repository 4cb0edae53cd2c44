"""The request budget of a federated account is a certificate account's (API.md, "Connecting
and verifying"): counted at the sandbox's Entra and Graph, 3 requests cold (metadata, token,
batch), 2 warm (token, batch), and 1 per account in a timer run that reuses a cached token;
under `vault-key` one Key Vault `sign` per token request and none while a token is cached.
The federated credentials are read inside the same `$batch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.app.bootstrap import build_context
from shared.timer import run as health_check
from shared.verification.verify import run_checks
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.customer import statuses
from tests.e2e.test_federated_flow import (
    FederatedCustomer,
    custody_settings,
    keyvault_signs,
)

COUNTED = ("metadata", "token", "graph")
FLEET = 3


@pytest.fixture(params=["local", "vault-key"])
def custody(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any, custody: str) -> RunningApp:
    return sandboxed_app(custody_settings(sandbox, custody), vault_credential=StaticCredential())


def counted(record: dict[str, Any]) -> dict[str, int]:
    return {t: record["counts"].get(t, 0) for t in COUNTED}


def batch_paths(record: dict[str, Any]) -> list[list[str]]:
    graph = [r for r in record["value"] if r["target"] == "graph"]
    assert all(r["path"] == "/v1.0/$batch" for r in graph), graph  # no Graph read outside one
    return [[s["path"] for s in r["batch"]] for r in graph]


def test_the_request_budget_cold_warm_and_in_a_timer_run(
    app: RunningApp, sandbox: Any, custody: str
) -> None:
    signs_per_token = 1 if custody == "vault-key" else 0
    fleet = [FederatedCustomer(app, sandbox).federated_all_the_way() for _ in range(FLEET)]
    # Cold: another instance of the app, nothing warm (no MSAL application, no metadata, no
    # issuer keys in memory).
    cold_app = build_context(app.context.settings, vault_credential=StaticCredential())
    for customer in fleet:
        sandbox.admin.reset_requests()
        report = run_checks(cold_app, customer.stored_account(), fresh_token=True).report.to_json()
        assert report["status"] == "connected", statuses(report)
        record = sandbox.admin.requests()
        assert counted(record) == {"metadata": 1, "token": 1, "graph": 1}, record["counts"]
        (batch,) = batch_paths(record)
        assert any(p.endswith("/federatedIdentityCredentials") for p in batch), batch
        assert len(keyvault_signs(record)) == signs_per_token
    # Warm: the customer's Verify button: a fresh token, one batch.
    for customer in fleet:
        customer.verify()
        sandbox.admin.reset_requests()
        assert customer.verify()["status"] == "connected"
        record = sandbox.admin.requests()
        assert counted(record) == {"metadata": 0, "token": 1, "graph": 1}, record["counts"]
        assert len(batch_paths(record)) == 1
        assert len(keyvault_signs(record)) == signs_per_token
    # A timer run on the cached tokens: one batch per account, nothing else, no signature.
    sandbox.admin.reset_requests()
    summary = health_check.run(app.context)
    record = sandbox.admin.requests()
    assert summary.checked == FLEET and summary.by_status["connected"] == FLEET
    assert counted(record) == {"metadata": 0, "token": 0, "graph": FLEET}, record["counts"]
    assert keyvault_signs(record) == []
