"""GET /api/health is anonymous, so it must not be a lever on the stores: probes are cached for a
few seconds and shared, a failure too (for less), and the body never holds a setting's value."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.app.bootstrap import set_context
from shared.app.health import FAILED_TTL, OK_TTL
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential


class CountingSqliteStore(SqliteAccountStore):
    """The real SQLite store, counting the probes that reach it."""

    pings = 0

    def ping(self) -> None:
        type(self).pings += 1
        super().ping()


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> RunningApp:
    running = sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url}, vault_credential=StaticCredential()
    )
    CountingSqliteStore.pings = 0
    store = CountingSqliteStore(running.context.settings.local_state_dir / "accounts.sqlite3")
    running.context = dataclasses.replace(running.context, accounts=store)
    set_context(running.context)
    return running


def vault_requests(sandbox: Any) -> int:
    count: int = sandbox.admin.requests()["counts"]["keyvault"]
    return count


def test_fifty_calls_cost_the_stores_one_probe(app: RunningApp, sandbox: Any) -> None:
    before = vault_requests(sandbox)
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:  # concurrent callers share the probe in flight too
        answers = list(pool.map(lambda _: app.http.get(app.api("/health")), range(50)))
    assert time.monotonic() - started < OK_TTL, "the calls outlasted the cache; test is void"
    assert {a.status_code for a in answers} == {200}
    assert all(a.json()["keyStore"]["status"] == "ok" for a in answers)
    assert CountingSqliteStore.pings == 1
    # One Key Vault point read (the first also meets the vault's 401 challenge): 1-2 requests.
    assert 1 <= vault_requests(sandbox) - before <= 2


def test_a_failed_probe_is_cached_briefly_and_recovery_shows(app: RunningApp, sandbox: Any) -> None:
    sandbox.admin.add_fault("keyvault", 503)
    try:
        first = app.http.get(app.api("/health"))
        after_first = vault_requests(sandbox)
        again = [app.http.get(app.api("/health")) for _ in range(19)]
        assert vault_requests(sandbox) == after_first  # the failure was served from the cache
    finally:
        sandbox.admin.clear_faults()
    for answer in (first, *again):
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
        assert answer.json()["keyStore"]["status"] == "unavailable"
        assert answer.json()["accountStore"]["status"] == "ok"
    assert CountingSqliteStore.pings == 1
    time.sleep(FAILED_TTL + 0.2)
    recovered = app.http.get(app.api("/health"))
    assert recovered.status_code == 200 and CountingSqliteStore.pings == 2


def test_the_body_names_backends_and_no_setting_value(app: RunningApp, sandbox: Any) -> None:
    values = (
        sandbox.keyvault_url,
        sandbox.keyvault_url.split("://", 1)[1],
        str(app.context.settings.local_state_dir),
    )
    healthy = app.http.get(app.api("/health"))
    sandbox.admin.add_fault("keyvault", 503)
    try:
        time.sleep(OK_TTL + 0.2)  # past the cached good answer
        down = app.http.get(app.api("/health"))
    finally:
        sandbox.admin.clear_faults()
    assert healthy.json()["keyStore"]["backend"] == "keyvault"
    assert healthy.json()["accountStore"]["backend"] == "sqlite"
    assert down.status_code == 503 and down.json()["keyStore"]["detail"]
    for answer in (healthy, down):
        assert not any(value in answer.text for value in values), answer.text
