"""Recording verification reports (shared/verification/record.py `record`) on the embedded
account store.

Of two reports for one account the one that STARTED later wins, to the millisecond, whichever is
recorded first; an `error` report changes only `lastVerification` and `lastVerifiedAt`.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.accountstore import VersionConflict
from shared.adapters.accountstore.base import NO_KEY_CHANGES
from shared.app.bootstrap import build_context
from shared.context import AppContext
from shared.core.model import Account
from shared.core.settings import load_settings
from shared.linking import keys
from shared.support.timefmt import to_rfc3339_ms
from shared.verification.checks.report import Report, ReportStatus
from shared.verification.record import record
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


def report(account: Account, started: datetime, status: ReportStatus = "connected") -> Report:
    return Report(
        account_id=account.id,
        status=status,
        started_at=started,
        duration_ms=1,
        cloud=None,
        checks=(),
    )


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
    assert later.checked_at == earlier.checked_at  # whole seconds cannot order them
    recorded = record(ctx, account, later).report.to_json()
    kept = record(ctx, account, earlier).account  # finishes last, started first
    assert kept.last_verification == recorded
    assert stored(ctx, account).last_verification == recorded
    assert stored(ctx, account).status == "action_required"


def test_a_report_that_started_later_replaces_an_earlier_one(
    ctx: AppContext, account: Account
) -> None:
    record(ctx, account, report(account, BASE + timedelta(milliseconds=1)))
    newer = report(account, BASE + timedelta(milliseconds=2), "action_required")
    recorded = record(ctx, account, newer)
    assert recorded.account.last_verification == recorded.report.to_json()
    assert stored(ctx, account).status == "action_required"


def test_a_report_stored_before_startedat_existed_is_ordered_by_its_checkedat(
    ctx: AppContext, account: Account
) -> None:
    old = report(account, BASE).to_json()
    del old["startedAt"]
    # As an older release stored it: written straight to the store (`record` writes startedAt).
    ctx.accounts.update_account(
        stored(ctx, account).updated(last_verification=old, last_verified_at=BASE),
        [],
        NO_KEY_CHANGES,
    )
    assert stored(ctx, account).last_verification == old
    stale = report(account, BASE - timedelta(milliseconds=1))
    record(ctx, account, stale)
    assert stored(ctx, account).last_verification == old
    fresh = report(account, BASE + timedelta(milliseconds=500))
    recorded = record(ctx, account, fresh).report.to_json()
    assert stored(ctx, account).last_verification == recorded


def test_concurrent_reports_keep_the_one_that_started_last(
    ctx: AppContext, account: Account
) -> None:
    reports = [report(account, BASE + timedelta(milliseconds=n)) for n in range(16)]
    random.Random(7).shuffle(reports)
    failures: list[BaseException] = []
    gate = threading.Barrier(len(reports))

    def write(one: Report) -> None:
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
    latest = max(reports, key=lambda r: r.started_at)
    assert stored(ctx, account).last_verification == latest.to_json()


def test_an_error_report_changes_only_the_last_verification(
    ctx: AppContext, account: Account
) -> None:
    recorded = record(ctx, account, report(account, BASE, "error"))
    saved, error = recorded.account, recorded.report.to_json()
    assert saved.status == "pending"  # keeps its status
    assert saved.updated_at == LONG_AGO  # and its updatedAt
    assert saved.last_verification == error
    assert saved.last_verified_at == BASE
    resource = stored(ctx, account).to_resource()
    assert resource["updatedAt"] == "2020-01-02T03:04:05Z"
    assert resource["lastVerifiedAt"] == error["checkedAt"]


def test_a_status_report_does_update_the_account(ctx: AppContext, account: Account) -> None:
    saved = record(ctx, account, report(account, BASE, "connected")).account
    assert saved.status == "connected" and saved.updated_at > LONG_AGO
