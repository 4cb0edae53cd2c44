"""Housekeeping against each account store (SQLite, Table Storage on Azurite) with real key files:
never-linked keys racing Connect, and the orphan sweep's limits."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from shared.adapters.accountstore.base import AccountStore
from shared.adapters.identity.local import LocalAuthenticator
from shared.adapters.keystore.base import KeyLabels
from shared.adapters.keystore.local import LocalKeyStore
from shared.context import AppContext
from shared.core import certificates
from shared.core.errors import ValidationFailed
from shared.core.model import KeyRecord
from shared.core.settings import load_settings
from shared.linking import accounts, keys
from shared.support.timefmt import utc_now
from shared.timer import housekeeping
from shared.timer.housekeeping import HousekeepingCounts

OWNER = "owner-a"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


# One RSA key for every key these tests make: they are about records, not key generation.
ONE_KEY = certificates.new_private_key(2048)


@pytest.fixture
def ctx(store: AccountStore, tmp_path: Path) -> AppContext:
    # The sweep of every key at every run (the default interval runs it once per 6 hours).
    settings = load_settings(
        {
            "AUTH_MODE": "local",
            "LOCAL_STATE_DIR": str(tmp_path / "state"),
            "HEALTH_CHECK_INTERVAL_HOURS": "0",
        }
    )
    return AppContext(
        settings=settings,
        keys=LocalKeyStore(tmp_path / "keys", generate=lambda size: ONE_KEY),
        accounts=store,
        authenticator=LocalAuthenticator(),
        http=requests.Session(),
    )


def aged_key(ctx: AppContext, days: float) -> KeyRecord:
    made = utc_now() - timedelta(days=days)
    return keys.store_key(ctx, OWNER, TENANT, str(uuid.uuid4()), "Race", now=made)


def orphan(ctx: AppContext, store: str) -> str:
    """A private key with no record, as a create that failed halfway leaves one."""
    key_id = str(uuid.uuid4())
    labels = KeyLabels(OWNER, TENANT, str(uuid.uuid4()), "", utc_now(), store=store)
    ctx.keys.create(
        key_id,
        labels,
        key_size=2048,
        certify=lambda signer, public: certificates.certify(
            signer, public, "orphan", validity_days=1, now=utc_now()
        ),
    )
    return key_id


def housekeeping_run(ctx: AppContext, *, hours_later: float = 0) -> HousekeepingCounts:
    return housekeeping.run(ctx, utc_now() + timedelta(hours=hours_later))


def stored_ids(ctx: AppContext) -> set[str]:
    return {k.key_id for k in ctx.keys.list()}


def test_connects_racing_the_deletion_of_expired_keys_never_lose_a_key(ctx: AppContext) -> None:
    # Housekeeping walks the keys in id order; the Connects start from the other end, so the
    # two meet and race over the keys in the middle.
    made = [aged_key(ctx, days=8) for _ in range(60)]
    expired = sorted(made, key=lambda k: k.key_id, reverse=True)

    def connect(record: KeyRecord) -> str:
        body = {
            "displayName": "Race",
            "tenantId": record.tenant_id,
            "applicationId": record.application_id,
            "keyId": record.key_id,
        }
        try:
            accounts.link_account(ctx, OWNER, body)
        except ValidationFailed as refused:
            assert [e.field for e in refused.errors] == ["keyId"]
            return "refused"
        return "linked"

    with ThreadPoolExecutor(max_workers=9) as pool:
        sweep = pool.submit(housekeeping_run, ctx)
        outcomes = list(pool.map(connect, expired))
        first = sweep.result()
    second = housekeeping_run(ctx)  # finishes whatever the first run left
    assert "linked" in outcomes and "refused" in outcomes  # both sides won some

    linked = list(ctx.accounts.list_all_accounts())
    assert len(linked) == outcomes.count("linked")
    for account in linked:  # every account's key is there, in both stores, and bound to it
        record = ctx.accounts.get_key(OWNER, account.key_id)
        assert record is not None and record.account_id == account.id and not record.deleting
        assert certificates.signer_matches(ctx.keys.signer(account.key_id), record.certificate_pem)
    # Every key the Connects lost is gone from both stores; nothing else is.
    assert {k.key_id for k in ctx.accounts.list_keys()} == {a.key_id for a in linked}
    assert stored_ids(ctx) == {a.key_id for a in linked}
    assert first.keys_removed + second.keys_removed + second.deletions_finished == outcomes.count(
        "refused"
    )


def test_unused_keys_go_after_the_retention_and_used_ones_stay(ctx: AppContext) -> None:
    young = aged_key(ctx, days=6.9)
    old = aged_key(ctx, days=7.1)
    used = aged_key(ctx, days=30)
    accounts.link_account(
        ctx,
        OWNER,
        {
            "displayName": "Used",
            "tenantId": TENANT,
            "applicationId": used.application_id,
            "keyId": used.key_id,
        },
    )
    summary = housekeeping_run(ctx)
    assert summary.keys_removed == 1
    assert ctx.accounts.get_key(OWNER, old.key_id) is None and old.key_id not in stored_ids(ctx)
    for kept in (young, used):
        assert ctx.accounts.get_key(OWNER, kept.key_id) is not None
        assert kept.key_id in stored_ids(ctx)


def test_a_run_past_its_deadline_takes_no_work(ctx: AppContext) -> None:
    old = aged_key(ctx, days=8)
    lost = orphan(ctx, ctx.accounts.identity)
    later = utc_now() + timedelta(hours=2)
    summary = housekeeping.run(ctx, later, stop_at=time.monotonic())
    assert summary.keys_removed == 0 and summary.orphans_removed == 0
    assert {old.key_id, lost} <= stored_ids(ctx)
    summary = housekeeping.run(ctx, later, stop_at=time.monotonic() + 60)
    assert summary.keys_removed == 1 and summary.orphans_removed == 1
    assert not {old.key_id, lost} & stored_ids(ctx)


def test_the_sweep_removes_only_orphans_of_this_account_store(ctx: AppContext) -> None:
    aged_key(ctx, days=1)  # the store has key records: a sweep is plausible
    ours = orphan(ctx, ctx.accounts.identity)
    another_environments = orphan(ctx, "table:otheraccount/linkedaccounts")
    untagged = orphan(ctx, "")  # made before keys named their store
    assert housekeeping_run(ctx).orphans_removed == 0  # younger than an hour: maybe in flight
    summary = housekeeping_run(ctx, hours_later=2)
    assert summary.orphans_removed == 1
    left = stored_ids(ctx)
    assert ours not in left
    assert another_environments in left and untagged in left


def test_the_sweep_refuses_when_the_store_has_no_key_records_but_many_orphans(
    ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    # The app pointed at a new, empty table (or one recreated) finds every customer's key
    # without a record: it must not delete them.
    keys_of_customers = {orphan(ctx, ctx.accounts.identity) for _ in range(11)}
    with caplog.at_level(logging.WARNING, logger="m365link.housekeeping"):
        summary = housekeeping_run(ctx, hours_later=2)
    assert summary.orphans_removed == 0
    assert keys_of_customers <= stored_ids(ctx)
    assert "orphan sweep refused" in caplog.text
    # Ten or fewer are what failed creates leave: those go.
    for key_id in list(keys_of_customers)[:1]:
        ctx.keys.delete(key_id)
    assert housekeeping_run(ctx, hours_later=2).orphans_removed == 10
    assert not keys_of_customers & stored_ids(ctx)
