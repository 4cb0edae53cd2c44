"""One check of the verification report: its status, its words, and its JSON.

`TITLES` names every check in report order (API.md fixes both); a decider, the table and the
skip rule all read the titles here, below them, so no module of the package imports another in
a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CheckStatus = Literal["pass", "warn", "fail", "skipped", "error"]

TITLES: dict[str, str] = {
    "tenant": "Tenant found",
    "application": "App registration found in the tenant",
    "certificate": "Certificate accepted by Entra ID",
    "admin_consent": "Admin consent granted for AccessReview.Read.All",
    "directory_role": "Global Reader role assigned to the app",
    "directory_read": "Directory readable through Microsoft Graph",
    "access_reviews_read": "Access reviews readable through Microsoft Graph",
    "organization_match": "Organisation name matches the tenant",
    "least_privilege": "Access is read-only",
    "certificate_expiry": "Certificate valid",
    "app_audience": "App registration is single-tenant",
    "app_credentials": "App registration holds this certificate and no client secret",
}
# The titles that name the credential, for an account that signs in with a federated one.
FEDERATED_TITLES: dict[str, str] = {
    "certificate": "Federated credential accepted by Entra ID",
    "certificate_expiry": "Federated credential does not expire",
    "app_credentials": "App registration holds this federated credential and no client secret",
}


@dataclass(frozen=True)
class Check:
    id: str
    status: CheckStatus
    detail: str
    remediation: str | None = None
    code: str | None = None
    # A `skipped` check names the step that blocked it; never part of the report's JSON.
    blocked_by: str | None = field(default=None, compare=False)
    title: str | None = field(default=None, compare=False)  # None: the check's usual title

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "title": self.title or TITLES[self.id],
            "detail": self.detail,
            "remediation": self.remediation,
            "code": self.code,
        }
        if self.status == "error":
            body["retryable"] = True
        return body


def aadsts(code: int | None) -> str | None:
    return f"AADSTS{code}" if code is not None else None


def skipped(check_id: str, blocker: str) -> Check:
    return Check(
        check_id,
        "skipped",
        f"Not checked: the step '{TITLES[blocker]}' ({blocker}) did not pass.",
        blocked_by=blocker,
    )


def unreachable(check_id: str, what: str, status: int | None, note: str | None = None) -> Check:
    answer = f"HTTP {status}" if status else (note or "no answer")
    return Check(
        check_id,
        "error",
        f"{what} could not be reached ({answer}) after retries. This is usually temporary; "
        "the check runs again at the next verification.",
    )
