"""Recording verification reports (shared/verify.py `record`) on the embedded account store.

Of two reports for one account the one that STARTED later wins, to the millisecond, whichever is
recorded first; an `error` report changes only `lastVerification` and `lastVerifiedAt`.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.accountstore import VersionConflict
from shared.app.bootstrap import build_context
from shared.context import AppContext
from shared.core.model import Account
from shared.core.settings import load_settings
from shared.linking import keys
from shared.support.timefmt import to_rfc3339_ms
from shared.verification.verify import record
from tests.contract.test_account_store import account_for

OWNER = "local-dev"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
LONG_AGO = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE = datetime(2026, 11, 26, 17, 0, 0, tzinfo=UTC)


@pytest.fixture
def ctx(tmp_path: Path) -> AppContext:
    return build_context(load_settings({"AUTH_MODE": "local", "LOCAL_STATE_DIR": str(tmp_path)}))


@pytest.fixture
def account(ctx: AppContext) -> Account:
    key = keys.store_key(ctx, OWNER, TENANT, APP, "Order", now=LONG_AGO)
    linked = account_for(key, created=LONG_AGO)
    ctx.accounts.link(linked)
    return linked


def report(account: Account, started: datetime, status: str = "connected") -> dict[str, Any]:
    return {
        "accountId": account.id,
        "status": status,
        "checkedAt": started.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "startedAt": to_rfc3339_ms(started),
        "durationMs": 1,
        "checks": [],
        "marker": uuid.uuid4().hex,
    }


def stored(ctx: AppContext, account: Account) -> Account:
    current = ctx.accounts.get_account(OWNER, account.id)
    assert current is not None
    return current


def test_started_at_carries_milliseconds() -> None:
    stamp = to_rfc3339_ms(datetime(2026, 11, 26, 17, 0, 0, 123456, tzinfo=UTC))
    assert stamp == "2026-11-26T17:00:00.123Z"


def test_a_report_that_started_earlier_in_the_same_second_never_replaces_a_later_one(
    ctx: AppContext, account: Account
) -> None:
    later = report(account, BASE + timedelta(milliseconds=900), "action_required")
    earlier = report(account, BASE + timedelta(milliseconds=100), "connected")
    assert later["checkedAt"] == earlier["checkedAt"]  # whole seconds cannot order them
    record(ctx, account, later)
    kept = record(ctx, account, earlier)  # finishes last, started first
    assert kept.last_verification == later
    assert stored(ctx, account).last_verification == later
    assert stored(ctx, account).status == "action_required"


def test_a_report_that_started_later_replaces_an_earlier_one(
    ctx: AppContext, account: Account
) -> None:
    record(ctx, account, report(account, BASE + timedelta(milliseconds=1)))
    newer = report(account, BASE + timedelta(milliseconds=2), "action_required")
    assert record(ctx, account, newer).last_verification == newer
    assert stored(ctx, account).status == "action_required"


def test_a_report_stored_before_startedat_existed_is_ordered_by_its_checkedat(
    ctx: AppContext, account: Account
) -> None:
    old = report(account, BASE)
    del old["startedAt"]
    record(ctx, account, old)
    assert stored(ctx, account).last_verification == old
    stale = report(account, BASE - timedelta(milliseconds=1))
    record(ctx, account, stale)
    assert stored(ctx, account).last_verification == old
    fresh = report(account, BASE + timedelta(milliseconds=500))
    record(ctx, account, fresh)
    assert stored(ctx, account).last_verification == fresh


def test_concurrent_reports_keep_the_one_that_started_last(
    ctx: AppContext, account: Account
) -> None:
    reports = [report(account, BASE + timedelta(milliseconds=n)) for n in range(16)]
    random.Random(7).shuffle(reports)
    failures: list[BaseException] = []
    gate = threading.Barrier(len(reports))

    def write(one: dict[str, Any]) -> None:
        gate.wait()
        try:
            record(ctx, account, one)
        except VersionConflict:
            pass  # the store's own answer to contention (a 503 with Retry-After at the edge)
        except BaseException as exc:  # anything else would be a 500
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(one,)) for one in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    latest = max(reports, key=lambda r: r["startedAt"])
    assert stored(ctx, account).last_verification == latest


def test_an_error_report_changes_only_the_last_verification(
    ctx: AppContext, account: Account
) -> None:
    error = report(account, BASE, "error")
    saved = record(ctx, account, error)
    assert saved.status == "pending"  # keeps its status
    assert saved.updated_at == LONG_AGO  # and its updatedAt
    assert saved.last_verification == error
    assert saved.last_verified_at == BASE
    resource = stored(ctx, account).to_resource()
    assert resource["updatedAt"] == "2020-01-02T03:04:05Z"
    assert resource["lastVerifiedAt"] == error["checkedAt"]


def test_a_status_report_does_update_the_account(ctx: AppContext, account: Account) -> None:
    saved = record(ctx, account, report(account, BASE, "connected"))
    assert saved.status == "connected" and saved.updated_at > LONG_AGO
