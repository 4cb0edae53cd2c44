"""The verification report: its checks, its overall status, and what it shows beside them.

`Report.to_json` is the report's one JSON form (API.md): the customer's answer, and
`lastVerification` as the account stores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.core import app_registration as registrations
from shared.core import roles
from shared.support.timefmt import to_rfc3339, to_rfc3339_ms
from shared.verification.checks.answers import Answers
from shared.verification.checks.check import Check
from shared.verification.checks.grants import claim_list, roles_read
from shared.verification.checks.graph import ORGANIZATION, organization_of
from shared.verification.checks.registration import APPLICATION, FEDERATED_CREDENTIALS

ReportStatus = Literal["connected", "action_required", "error"]


@dataclass(frozen=True)
class Facts:
    """What the report shows beside the checks: what Graph and the token said."""

    organization: dict[str, Any] | None = None
    granted_permissions: tuple[str, ...] = ()
    directory_roles: tuple[str, ...] = ()  # display names (an unknown role by its id)
    app_registration: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "grantedPermissions": list(self.granted_permissions),
            "directoryRoles": list(self.directory_roles),
            "appRegistration": self.app_registration,
        }


@dataclass(frozen=True)
class Report:
    """One verification's report. `started_at` orders the reports of an account (to the
    millisecond); `rotation` is the account's rotation resource as it stands once the report
    is recorded (`record` sets it)."""

    account_id: str
    status: ReportStatus
    started_at: datetime
    duration_ms: int
    cloud: str | None
    checks: tuple[Check, ...]
    facts: Facts = Facts()
    rotation: dict[str, Any] | None = None

    @property
    def checked_at(self) -> datetime:
        """`checkedAt`: when it started, to the whole second."""
        return self.started_at.astimezone(UTC).replace(microsecond=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "status": self.status,
            "checkedAt": to_rfc3339(self.started_at),
            "startedAt": to_rfc3339_ms(self.started_at),
            "durationMs": self.duration_ms,
            "cloud": self.cloud,
            "checks": [c.to_json() for c in self.checks],
            **self.facts.to_json(),
            "rotation": self.rotation,
        }


def report_facts(answers: Answers) -> Facts:
    """What the report shows beside the checks, from what Graph and the token said."""
    organization = answers.answered(ORGANIZATION)
    application = answers.answered(APPLICATION)
    federated = answers.answered(FEDERATED_CREDENTIALS)
    role_ids = (roles_read(answers).ids if answers.has_token else None) or []
    return Facts(
        organization=organization_of(organization) if organization is not None else None,
        granted_permissions=tuple(sorted(claim_list(answers.claims, "roles"))),
        directory_roles=tuple(roles.shown_roles(role_ids)),
        app_registration=registrations.registration_json(
            registrations.registration_of(application.body),
            answers.owners,
            registrations.federated_of(federated.body) if federated is not None else None,
        )
        if application is not None
        else None,
    )


def overall_status(checks: Sequence[Check]) -> ReportStatus:
    statuses = {c.status for c in checks}
    if "fail" in statuses:
        return "action_required"
    if "error" in statuses:
        return "error"
    return "connected"
