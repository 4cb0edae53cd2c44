"""Every span and metric name the app emits, in one place, and the instruments behind them.

Only the OpenTelemetry API is used here: with no SDK configured (no `OTEL_*` variable and no
`APPLICATIONINSIGHTS_CONNECTION_STRING`, see `shared.app.telemetry`) every call is the API's
no-op and costs next to nothing. Attributes are bounded: a status, a check id, an error code, a
service name; never a tenant, application or account id on a metric (cardinality), and never a
token, assertion, key or setting value anywhere.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from opentelemetry import metrics, trace

SCOPE = "m365link"

# --- metrics ----------------------------------------------------------------------------------
VERIFICATIONS = "m365link.verifications"  # counter; report.status, trigger (customer | timer)
CHECKS = "m365link.verification.checks"  # counter; check.id, check.status, check.code
VERIFICATION_DURATION = "m365link.verification.duration"  # histogram, ms; report.status
TOKEN_REQUESTS = "m365link.token.requests"  # noqa: S105 - a metric name; service, outcome
THROTTLED = "m365link.outbound.throttled"  # counter of 429 answers; service
RETRY_AFTER_WAITED = "m365link.outbound.retry_after"  # histogram, s waited on Retry-After; service
KEY_VAULT_SIGN_DURATION = "m365link.keyvault.sign.duration"  # histogram, ms; custody
TIMER_BACKLOG = "m365link.timer.backlog"  # gauge: due accounts left at the end of a run
TIMER_LAG = "m365link.timer.lag"  # gauge, s: age of the oldest due account at the end of a run
ROTATIONS = "m365link.rotations"  # counter; rotation.status, rotation.kind
ISSUER_KEY_AGE = "m365link.issuer.key_age"  # gauge, s: how long the signing issuer key has signed

# --- attribute names --------------------------------------------------------------------------
SERVICE = "m365link.service"  # entra | graph | keyvault | table
REPORT_STATUS = "m365link.report.status"
TRIGGER = "m365link.trigger"
CHECK_ID = "m365link.check.id"
CHECK_STATUS = "m365link.check.status"
CHECK_CODE = "m365link.check.code"
FAILING_CHECKS = "m365link.report.failing_checks"  # span only: the ids of checks not passing
OUTCOME = "m365link.outcome"
RETRIES = "m365link.retries"
CUSTODY = "m365link.custody"
ROTATION_STATUS = "m365link.rotation.status"
ROTATION_KIND = "m365link.rotation.kind"


def tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE)


def meter() -> metrics.Meter:
    return metrics.get_meter(SCOPE)


@cache
def counter(name: str, unit: str = "1", description: str = "") -> metrics.Counter:
    return meter().create_counter(name, unit=unit, description=description)


@cache
def histogram(name: str, unit: str, description: str = "") -> metrics.Histogram:
    return meter().create_histogram(name, unit=unit, description=description)


@cache
def gauge(name: str, unit: str, description: str = "") -> Any:
    """A synchronous gauge (`set`); the API names its type only privately (`_Gauge`)."""
    return meter().create_gauge(name, unit=unit, description=description)


def throttled(service: str, answers: int = 1) -> None:
    """`answers` 429s from `service` (THROTTLED)."""
    counter(THROTTLED).add(answers, {SERVICE: service})


def waited(service: str, seconds: float) -> None:
    """A Retry-After of `service` waited for (RETRY_AFTER_WAITED, seconds)."""
    histogram(RETRY_AFTER_WAITED, "s").record(seconds, {SERVICE: service})
