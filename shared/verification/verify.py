"""Verifies one linked account against its tenant and records the report (`verify_account`).

The steps follow the linking guide: tenant (OpenID metadata), app registration and certificate (one
token request), then what the token grants and every Graph read in one `$batch`. `gather` asks
for those answers; the decision table in `shared.verification.checks` turns them into the
checks (a step that cannot run because an earlier one failed is skipped there). A step that
could not reach Microsoft or the key store is an `error`, which never overwrites the account's
status.

A verification and the write of its report share one deadline: the customer's
`VERIFY_TIMEOUT_SECONDS`, a timer account's share of the run's budget. API.md promises that no
verification takes longer than that in all, and the timer's budget must bound its run, so the
write is inside it: the checks get all but `RECORD_SHARE` of it (whatever did not finish by
then is an `error`), and the rest is kept for recording, whose retries stop at the deadline
(then the 503 of a contended account).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from shared.context import AppContext
from shared.core.model import Account
from shared.linking.accounts import get_account
from shared.support import telemetry as t
from shared.support.deadline import deadline
from shared.verification.checks.report import Report, overall_status, report_facts
from shared.verification.checks.table import decide
from shared.verification.gather import gather
from shared.verification.record import record

log = logging.getLogger("m365link.verify")

RECORD_SHARE = 0.1  # of a verification's deadline, kept for writing its report
# A check's code as a metric attribute: an AADSTS number or a Graph error code (a bounded word);
# anything else Microsoft might answer is counted as `other`, never as its text.
_BOUNDED_CODE = re.compile(r"AADSTS\d{1,8}|[A-Za-z][A-Za-z0-9_.]{0,63}")


@dataclass(frozen=True)
class Verification:
    """A report not yet recorded, and the rotation key Entra accepted in it, if any (`record`
    then switches the account to that key)."""

    report: Report
    switch_to: str | None = None


def run_checks(
    ctx: AppContext,
    account: Account,
    *,
    fresh_token: bool,
    now: datetime | None = None,
) -> Verification:
    """The verification report for an account (not yet recorded). Never raises for an outbound
    failure: what could not be reached is a check with status `error`."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    answers, cloud = gather(ctx, account, fresh_token=fresh_token, now=now)
    checks = decide(answers)
    report = Report(
        account_id=account.id,
        status=overall_status(checks),
        started_at=now,
        duration_ms=round((time.perf_counter() - started) * 1000),
        cloud=cloud.name if cloud else None,
        checks=tuple(checks),
        facts=report_facts(answers),
        # The rotation as it stands before the report is recorded: `record` sets it as it
        # stands after.
        rotation=account.rotation.to_resource(account.id) if account.rotation else None,
    )
    return Verification(report, answers.switched_to)


def verify_account(ctx: AppContext, owner: str, account_id: str) -> dict[str, Any]:
    """What the customer's Verify button does: fresh token, report recorded, report returned
    (as recorded), all within one deadline of `VERIFY_TIMEOUT_SECONDS`."""
    seconds = ctx.settings.verify_timeout_seconds
    started = time.perf_counter()
    with deadline(seconds):
        account = get_account(ctx, owner, account_id)
        with deadline(seconds * (1 - RECORD_SHARE)):
            verification = run_checks(ctx, account, fresh_token=True)
        report = record(ctx, account, verification.report, switch_to=verification.switch_to).report
    observe(report, trigger="customer", started=started)
    log.info(
        "verification accountId=%s status=%s durationMs=%d",
        account.id,
        report.status,
        report.duration_ms,
    )
    return report.to_json()


def observe(report: Report, *, trigger: str, started: float) -> None:
    """A finished verification (its report recorded) in the metrics, and on the current span
    its status and the ids of the checks that did not pass. `started`: `time.perf_counter()`
    when it began; `trigger`: customer | timer. No account, tenant or application id here."""
    elapsed_ms = (time.perf_counter() - started) * 1000
    status = {t.REPORT_STATUS: report.status}
    t.counter(t.VERIFICATIONS, description="verifications by report status and trigger").add(
        1, {**status, t.TRIGGER: trigger}
    )
    t.histogram(t.VERIFICATION_DURATION, "ms", "a verification, checks and record").record(
        elapsed_ms, status
    )
    checks = t.counter(t.CHECKS, description="verification checks by id, status and code")
    for check in report.checks:
        checks.add(
            1,
            {
                t.CHECK_ID: check.id,
                t.CHECK_STATUS: check.status,
                t.CHECK_CODE: bounded_code(check.code),
            },
        )
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(t.REPORT_STATUS, report.status)
        span.set_attribute(
            t.FAILING_CHECKS, [c.id for c in report.checks if c.status in ("fail", "error")]
        )


def bounded_code(code: str | None) -> str:
    """A check's code as a metric attribute: "" for none, `other` for text that is not a code."""
    if not code:
        return ""
    return code if _BOUNDED_CODE.fullmatch(code) else "other"
