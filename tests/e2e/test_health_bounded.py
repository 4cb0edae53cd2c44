"""A health probe is a unit of work like any other: however slowly a store answers, GET
/api/health answers within the probe's deadline, and callers queued behind it do too."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.app.health import PROBE_SECONDS
from tests.conftest import RunningApp
from tests.contract.test_key_store import StaticCredential

SLACK = 2.0  # local round trips on a busy machine


@pytest.mark.timeout(60)
def test_a_store_that_hangs_is_reported_down_within_the_probe_deadline(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    app = sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url}, vault_credential=StaticCredential()
    )
    sandbox.admin.add_fault("keyvault", None, latency_ms=30_000)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:  # three callers wait for the probe in flight
            answers = list(pool.map(lambda _: app.http.get(app.api("/health")), range(4)))
    finally:
        sandbox.admin.clear_faults()
    elapsed = time.monotonic() - started
    assert elapsed < PROBE_SECONDS + SLACK  # the stores' own timeouts and retries: ~40 s
    assert {a.status_code for a in answers} == {503}
    body = answers[0].json()
    assert body["keyStore"]["status"] == "unavailable" and body["accountStore"]["status"] == "ok"
    assert int(answers[0].headers["Retry-After"]) > 0
