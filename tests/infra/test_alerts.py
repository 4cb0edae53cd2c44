"""The log alert rules of infra/app/alerts.bicep, and host.json's telemetry mode.

Each rule's KQL is read out of the parsed Bicep and checked to name the metric, attributes and
values the app really emits (shared/support/telemetry.py, the federated check's AADSTS codes), to
return the column the rule measures, and to be judged against the main.bicep parameter meant for
it. The mutation tests at the bottom break one of these in an otherwise intact copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from shared.support import telemetry as names
from shared.verification.checks.federated import ISSUER_NOT_REACHED
from tests.infra.test_bicep_security import (
    COMPONENTS,
    REPO,
    Expr,
    Literal,
    Param,
    Project,
    Ref,
    assert_mutation_caught,
    param_default,
    path_get,
)

RULES = "Microsoft.Insights/scheduledQueryRules"
ACTION_GROUPS = "Microsoft.Insights/actionGroups"
ALERTS = "app/alerts.bicep"


def _rule(p: Project, suffix: str) -> Any:
    found = [
        r
        for r in p.deployed(RULES)
        if getattr(r.value.get("name"), "text", "").endswith(f"-{suffix}'")
    ]
    assert len(found) == 1, f"expected one scheduled query rule named *-{suffix}, found {found}"
    return found[0]


def _criterion(rule: Any) -> dict[str, Any]:
    allof = path_get(rule.value, "properties.criteria.allOf")
    assert isinstance(allof, list) and len(allof) == 1, f"{rule.name}: expected one criterion"
    return dict(allof[0])


def _query(p: Project, rule: Any) -> tuple[str, list[Any]]:
    """The rule's KQL (whitespace collapsed) and the arguments a format() fills into it."""
    got = p.resolve(rule.file, _criterion(rule).get("query"))
    assert isinstance(got, Ref), f"{rule.name}: the query is not a Bicep string ({got!r})"
    m = re.fullmatch(r"format\(\s*'''(.*)''',\s*(.*)\)", got.text, re.S)
    if m:
        args = [p.resolve(got.file, Expr(a.strip())) for a in m.group(2).split(",")]
        return m.group(1).strip(), args
    m = re.fullmatch(r"'''(.*)'''", got.text, re.S)
    assert m, f"{rule.name}: the query must be a multi-line string literal, is {got.text!r}"
    return m.group(1).strip(), []


def _expect_param(p: Project, rule: Any, value: Any, param: str) -> Param:
    got = p.resolve(rule.file, value)
    assert isinstance(got, Param) and got.decl.name == param, (
        f"{rule.name}: expected main.bicep param {param}, got {got!r}"
    )
    return got


def _measured(p: Project, rule: Any, query: str) -> Any:
    """The rule compares the query's measure column, one row per window, above its threshold."""
    crit = _criterion(rule)
    column = p.resolve(rule.file, crit.get("metricMeasureColumn"))
    assert isinstance(column, Literal), f"{rule.name}: no metricMeasureColumn"
    assert re.search(rf"\| (?:summarize|project) {column.value} = ", query), (
        f"{rule.name}: the query does not produce the measured column {column.value}: {query}"
    )
    assert query.startswith("customMetrics "), f"{rule.name}: the query must read customMetrics"
    assert p.resolve(rule.file, crit.get("operator")) == Literal("GreaterThan")
    assert p.resolve(rule.file, crit.get("timeAggregation")) == Literal("Maximum")
    scopes = path_get(rule.value, "properties.scopes")
    assert isinstance(scopes, list) and len(scopes) == 1, f"{rule.name}: one scope expected"
    p.property_of(p.resolve(rule.file, scopes[0]), COMPONENTS, "id")
    assert p.resolve(rule.file, path_get(rule.value, "properties.enabled")) == Literal(True)
    return crit.get("threshold")


def _dimension(attribute: str) -> str:
    return rf"tostring\(customDimensions\['{re.escape(attribute)}'\]\)"


def _names_metric(query: str, metric: str) -> None:
    found = re.findall(r"\| where name == '([^']+)'", query)
    assert found == [metric], f"the query must read metric {metric} only, reads {found}"


def _schedule_period_seconds(schedule: str) -> int:
    """Period of an NCRONTAB '0 */N * * * *' (every N minutes)."""
    m = re.fullmatch(r"0 \*/(\d+) \* \* \* \*", schedule)
    assert m, f"not an every-N-minutes schedule: {schedule!r}"
    return int(m.group(1)) * 60


# ---- the checks ------------------------------------------------------------------------


def check_timer_lag_alert(p: Project) -> None:
    rule = _rule(p, "timer-lag")
    query, _ = _query(p, rule)
    _names_metric(query, names.TIMER_LAG)
    assert "lagSeconds = max(valueSum / valueCount)" in query, query
    threshold = _expect_param(p, rule, _measured(p, rule, query), "alertTimerLagSeconds")
    schedule = p.get("main.bicep", "healthCheckSchedule", "param")
    assert schedule is not None
    period = _schedule_period_seconds(str(param_default(Param(schedule))))
    assert param_default(threshold) == period, (
        f"alertTimerLagSeconds must default to the default timer period {period} s"
    )


def check_error_share_alert(p: Project) -> None:
    rule = _rule(p, "verification-errors")
    query, args = _query(p, rule)
    _names_metric(query, names.VERIFICATIONS)
    assert re.search(rf"extend status = {_dimension(names.REPORT_STATUS)}", query), query
    assert (
        "summarize verifications = sum(valueSum), errors = sumif(valueSum, status == 'error')"
        in query
    ), query
    assert "| where verifications >= {0}" in query, query
    assert "project errorPercent = 100.0 * errors / verifications" in query, query
    assert len(args) == 1 and isinstance(args[0], Param), f"format args {args!r}"
    assert args[0].decl.name == "alertErrorShareMinimumVerifications"
    _expect_param(p, rule, _measured(p, rule, query), "alertErrorSharePercent")
    _expect_param(p, rule, path_get(rule.value, "properties.windowSize"), "alertErrorShareWindow")


def check_issuer_unreachable_alert(p: Project) -> None:
    rule = _rule(p, "issuer-unreachable")
    query, _ = _query(p, rule)
    _names_metric(query, names.CHECKS)
    assert re.search(rf"where {_dimension(names.CHECK_ID)} == 'certificate'", query), query
    assert re.search(rf"where {_dimension(names.CHECK_STATUS)} == 'error'", query), query
    m = re.search(rf"where {_dimension(names.CHECK_CODE)} in \(([^)]*)\)", query)
    assert m, f"the query does not filter {names.CHECK_CODE}: {query}"
    codes = set(re.findall(r"'([^']+)'", m.group(1)))
    assert codes == {f"AADSTS{c}" for c in ISSUER_NOT_REACHED}, (
        f"issuer-unreachable codes {sorted(codes)} differ from the federated check's"
    )
    assert "summarize issuerUnreachable = sum(valueSum)" in query, query
    threshold = p.resolve(rule.file, _measured(p, rule, query))
    assert threshold == Literal(0), f"any issuer-unreachable check must alert, is {threshold!r}"
    _expect_param(
        p, rule, path_get(rule.value, "properties.windowSize"), "alertIssuerUnreachableWindow"
    )


def check_key_vault_sign_alert(p: Project) -> None:
    rule = _rule(p, "keyvault-sign-latency")
    query, _ = _query(p, rule)
    _names_metric(query, names.KEY_VAULT_SIGN_DURATION)
    assert (
        "summarize p95Milliseconds = percentilew(valueSum / valueCount, valueCount, 95)" in query
    ), query
    _expect_param(p, rule, _measured(p, rule, query), "alertKeyVaultSignP95Ms")


def check_alerts_notify(p: Project) -> None:
    group = [g for g in p.deployed(ACTION_GROUPS)]
    assert len(group) == 1, f"expected one action group, found {group}"
    assert group[0].condition == "!empty(alertEmail)", "the action group is made only for an e-mail"
    receivers = path_get(group[0].value, "properties.emailReceivers")
    assert isinstance(receivers, list) and len(receivers) == 1
    _expect_param(p, group[0], receivers[0].get("emailAddress"), "alertEmail")
    for rule in p.deployed(RULES):
        raw = path_get(rule.value, "properties.actions.actionGroups")
        assert raw == Expr("actionGroups"), f"{rule.name} does not notify the action groups"
    wiring = p.resolve(ALERTS, Expr("actionGroups"))
    assert wiring == Ref(
        ALERTS,
        "empty(actionGroupId) ? emailActionGroups : concat(emailActionGroups, [actionGroupId])",
    ), f"the rules must notify the e-mail group and alertActionGroupId, notify {wiring!r}"
    existing = p.resolve(ALERTS, Expr("actionGroupId"))
    assert isinstance(existing, Param) and existing.decl.name == "alertActionGroupId", existing
    assert p.resolve(ALERTS, Expr("emailActionGroups")) == Ref(
        ALERTS, "empty(alertEmail) ? [] : [emailActionGroup.id]"
    )


ALL_CHECKS: list[Callable[[Project], None]] = [
    check_timer_lag_alert,
    check_error_share_alert,
    check_issuer_unreachable_alert,
    check_key_vault_sign_alert,
    check_alerts_notify,
]


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_check(project: Project, check: Callable[[Project], None]) -> None:
    check(project)


def test_host_json_telemetry_mode() -> None:
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    assert host["version"] == "2.0"
    assert host.get("telemetryMode") == "OpenTelemetry", (
        "host.json must set telemetryMode OpenTelemetry at its root"
    )


A = ALERTS
MUTATIONS: list[tuple[str, str, str, str, Callable[[Project], None]]] = [
    (
        "lag reads the backlog",
        A,
        "'m365link.timer.lag'",
        "'m365link.timer.backlog'",
        check_timer_lag_alert,
    ),
    (
        "lag threshold fixed",
        A,
        "threshold: timerLagThresholdSeconds",
        "threshold: 6000",
        check_timer_lag_alert,
    ),
    (
        "lag threshold not passed on",
        "main.bicep",
        "timerLagThresholdSeconds: alertTimerLagSeconds",
        "timerLagThresholdSeconds: 900",
        check_timer_lag_alert,
    ),
    (
        "lag default off the schedule",
        "main.bicep",
        "param alertTimerLagSeconds int = 600",
        "param alertTimerLagSeconds int = 3600",
        check_timer_lag_alert,
    ),
    (
        "lag rule scoped to the action group",
        A,
        "      applicationInsights.id\n    ]\n    evaluationFrequency: 'PT10M'",
        "      emailActionGroup.id\n    ]\n    evaluationFrequency: 'PT10M'",
        check_timer_lag_alert,
    ),
    ("share counts fails", A, "status == 'error')", "status == 'fail')", check_error_share_alert),
    (
        "share reads another attribute",
        A,
        "customDimensions['m365link.report.status']",
        "customDimensions['status']",
        check_error_share_alert,
    ),
    (
        "share is a count",
        A,
        "100.0 * errors / verifications",
        "100.0 * errors",
        check_error_share_alert,
    ),
    (
        "share threshold fixed",
        A,
        "threshold: errorShareThresholdPercent",
        "threshold: 50",
        check_error_share_alert,
    ),
    (
        "share minimum fixed",
        A,
        "  errorShareMinimumVerifications\n)",
        "  20\n)",
        check_error_share_alert,
    ),
    (
        "issuer codes wrong",
        A,
        "'AADSTS7000272')",
        "'AADSTS700016')",
        check_issuer_unreachable_alert,
    ),
    (
        "issuer on the application check",
        A,
        "'m365link.check.id']) == 'certificate'",
        "'m365link.check.id']) == 'application'",
        check_issuer_unreachable_alert,
    ),
    (
        "issuer tolerates failures",
        A,
        "threshold: 0\n",
        "threshold: 5\n",
        check_issuer_unreachable_alert,
    ),
    ("sign median", A, "valueCount, 95)", "valueCount, 50)", check_key_vault_sign_alert),
    (
        "sign reads verification duration",
        A,
        "'m365link.keyvault.sign.duration'",
        "'m365link.verification.duration'",
        check_key_vault_sign_alert,
    ),
    (
        "sign column renamed",
        A,
        "summarize p95Milliseconds",
        "summarize p95",
        check_key_vault_sign_alert,
    ),
    (
        "e-mail fixed",
        A,
        "emailAddress: alertEmail",
        "emailAddress: 'ops@example.com'",
        check_alerts_notify,
    ),
    (
        "existing action group ignored",
        "main.bicep",
        "actionGroupId: alertActionGroupId",
        "actionGroupId: ''",
        check_alerts_notify,
    ),
    (
        "action group always made",
        A,
        "'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {",
        "'Microsoft.Insights/actionGroups@2023-01-01' = {",
        check_alerts_notify,
    ),
    (
        "a rule notifies nobody",
        A,
        "      actionGroups: actionGroups\n    }\n  }\n}\n\nresource verificationErrorsAlert",
        "      actionGroups: []\n    }\n  }\n}\n\nresource verificationErrorsAlert",
        check_alerts_notify,
    ),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "check"), [pytest.param(*m[1:], id=m[0]) for m in MUTATIONS]
)
def test_check_catches_mutation(
    project: Project, file: str, old: str, new: str, check: Callable[[Project], None]
) -> None:
    assert_mutation_caught(project, file, [(old, new)], check)
