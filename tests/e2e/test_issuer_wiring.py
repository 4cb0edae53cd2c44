"""The issuer key ring inside the app: `GET /api/health` names it once it has a key, the timer
runs its upkeep (a failure logged, never the run's), and housekeeping's orphan sweep keeps every
issuer key a record names while removing one a crash left without a record."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.issuer import IssuerKeyring
from shared.adapters.keystore.base import KeyLabels
from shared.app import health
from shared.app.bootstrap import build_context
from shared.app.health import OK_TTL
from shared.context import AppContext
from shared.core import certificates
from shared.timer import housekeeping
from shared.timer import run as timer
from tests.conftest import SEEN, RunningApp
from tests.contract.test_key_store import StaticCredential
from tests.e2e.test_issuer_key_rotation import Clock, Crash, crash_at

DUE = timedelta(days=30) - timedelta(hours=24)  # the default rotation is 180 days: set to 30
PRIVATE_MEMBERS = ('"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"')


def start(start_app: Callable[..., RunningApp], clock: Clock, **env: str) -> RunningApp:
    return start_app({"OIDC_KEY_ROTATION_DAYS": "30", **env}, issuer_clock=clock)


def held(ctx: AppContext) -> set[str]:
    return {k.key_id for k in ctx.keys.list()}


def test_health_names_the_issuer_once_it_has_a_key(start_app: Callable[..., RunningApp]) -> None:
    app = start(start_app, Clock())
    before = app.http.get(app.api("/health"))
    assert before.status_code == 200 and "issuer" not in before.json()
    app.context.issuer().ensure()
    time.sleep(OK_TTL + 0.2)  # the health probe's own cache
    after = app.http.get(app.api("/health"))
    assert after.status_code == 200
    assert after.json()["issuer"] == {"status": "ok", "keys": 1}
    assert not any(member in after.text for member in PRIVATE_MEMBERS)


def test_another_instance_names_the_issuer_once_it_has_read_its_keys(
    start_app: Callable[..., RunningApp],
) -> None:
    """The probe reads no issuer record before its process has seen an issuer key (it stays
    one point read per store); the instance's own timer run, a JWKS or a signature teach it."""
    clock = Clock()
    app = start(start_app, clock)
    app.context.issuer().ensure()
    other = build_context(app.context.settings, issuer_clock=clock)  # a second instance
    assert "issuer" not in health.probe(other)
    timer.run(other, budget_seconds=20)
    time.sleep(OK_TTL + 0.2)
    assert health.probe(other)["issuer"] == {"status": "ok", "keys": 1}


def test_the_timer_rotates_the_issuer_key(start_app: Callable[..., RunningApp]) -> None:
    clock = Clock()
    app = start(start_app, clock)
    issuer = app.context.issuer()
    issuer.ensure()
    assert timer.run(app.context, budget_seconds=20).issuer_keys_published == 0
    clock.advance(DUE)
    summary = timer.run(app.context, budget_seconds=20)
    assert summary.issuer_keys_published == 1
    assert summary.as_dict()["issuerKeysPublished"] == 1
    assert len(issuer.public_jwks()["keys"]) == 2
    assert timer.run(app.context, budget_seconds=20).issuer_keys_published == 0  # made once


def test_a_vault_outage_fails_the_upkeep_not_the_run_and_the_next_run_finishes(
    sandboxed_app: Callable[..., RunningApp], sandbox: Any
) -> None:
    clock = Clock()
    app = sandboxed_app(
        {"KEY_VAULT_URL": sandbox.keyvault_url, "OIDC_KEY_ROTATION_DAYS": "30"},
        vault_credential=StaticCredential(),
        issuer_clock=clock,
    )
    issuer = app.context.issuer()
    issuer.ensure()
    kid, _ = issuer.signer()
    clock.advance(DUE)
    lines = len(SEEN.log_lines)
    sandbox.admin.add_fault("keyvault", 503)
    try:
        summary = timer.run(app.context, budget_seconds=10)
    finally:
        sandbox.admin.clear_faults()
    assert summary.issuer_keys_published == 0
    assert any("issuer key upkeep" in line for line in SEEN.log_lines[lines:])
    assert issuer.signer()[0] == kid  # the key in use is untouched
    clock.advance(timedelta(minutes=20))  # a claim the outage left behind has gone stale
    assert timer.run(app.context, budget_seconds=20).issuer_keys_published == 1
    assert len(sandbox.admin.keyvault_keys()["keys"]) == 2
    assert {r.state for r in app.context.accounts.issuer_keys()} == {"published"}


def test_the_orphan_sweep_keeps_recorded_issuer_keys_and_removes_unrecorded_ones(
    start_app: Callable[..., RunningApp],
) -> None:
    clock = Clock()
    ctx = start(start_app, clock).context
    ctx.issuer().ensure()
    clock.advance(DUE)
    crashing = IssuerKeyring(
        ctx.accounts,
        ctx.key_store,
        ctx.keys.custody,
        rotation=timedelta(days=30),
        store_identity=ctx.accounts.identity,
        now=clock,
        hook=crash_at("created"),
    )
    with pytest.raises(Crash):  # the next key is made and claimed, its record never completed
        crashing.upkeep()
    orphan = str(uuid.uuid4())  # a key whose claim was retired while its maker was away
    labels = KeyLabels("%issuer", "", "", "", clock() + timedelta(days=400), ctx.accounts.identity)
    ctx.keys.create(orphan, labels, key_size=2048, certify=_certify)
    recorded = {r.key_id for r in ctx.accounts.issuer_keys()}
    assert len(recorded) == 2 and held(ctx) == recorded | {orphan}
    counts = housekeeping.run(ctx, datetime.now(UTC) + timedelta(hours=2))
    assert counts.orphans_removed == 1
    assert held(ctx) == recorded
    kid, _ = ctx.issuer().signer()
    assert kid in {k["kid"] for k in ctx.issuer().public_jwks()["keys"]}


def _certify(signer: Any, public: Any) -> Any:
    return certificates.certify(signer, public, "orphan", validity_days=1, now=datetime.now(UTC))
