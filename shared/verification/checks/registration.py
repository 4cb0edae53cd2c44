"""The app registration's checks, from one Graph read of it: who may sign in (`app_audience`)
and which credentials it holds (`app_credentials`)."""

from __future__ import annotations

from datetime import datetime

from shared.core import app_registration as registrations
from shared.core.answers import GraphAnswer
from shared.verification.checks.answers import GraphRead
from shared.verification.checks.check import Check, unreachable

# The registration of the account's application, with only the fields the checks read.
APPLICATION = GraphRead(
    "application", "/applications(appId='{application_id}')?$select=" + registrations.SELECT
)

# Its federated credentials (Graph lists them apart from the registration), in the same $batch.
FEDERATED_CREDENTIALS = GraphRead(
    "federatedCredentials", "/applications(appId='{application_id}')/federatedIdentityCredentials"
)

_AUDIENCES = {
    "AzureADMultipleOrgs": "accounts in any organizational directory (multi-tenant)",
    "AzureADandPersonalMicrosoftAccount": (
        "accounts in any organizational directory and personal Microsoft accounts"
    ),
    "PersonalMicrosoftAccount": "personal Microsoft accounts only",
}
_SINGLE_TENANT_STEP = (
    "In the Entra admin center open App registrations > your app > Authentication, set "
    "Supported account types to 'Accounts in this organizational directory only (Single "
    "tenant)' and press Save."
)
_MANUAL_CHECK = {
    "app_audience": (
        "Check it yourself: App registrations > your app > Authentication > Supported account "
        "types must be 'Accounts in this organizational directory only'."
    ),
    "app_credentials": (
        "Check it yourself: App registrations > your app > Certificates & secrets must list "
        "this account's credential and no client secret."
    ),
}


def _registration_not_read(check_id: str, answer: GraphAnswer) -> Check:
    """A read of the app registration that did not succeed: transient is an `error`; a refusal
    is `skipped` with the reason, never a failure of the account (Global Reader may not cover
    this read, FACTS §10)."""
    if answer.transient:
        return unreachable(check_id, "Microsoft Graph", answer.status, answer.message)
    said = f"HTTP {answer.status}" + (f", {answer.code}" if answer.code else "")
    if answer.status == 403:
        return Check(
            check_id,
            "skipped",
            f"Not checked: Microsoft Graph refused to read the app registration ({said}). The "
            "Global Reader role does not cover this read here, or was assigned less than 15 "
            "minutes ago.",
            _MANUAL_CHECK[check_id] + " Verify again later to have the portal check it.",
            answer.code,
        )
    return Check(
        check_id,
        "skipped",
        f"Not checked: Microsoft Graph did not return the app registration ({said}"
        f"{': ' + answer.message if answer.message else ''}).",
        _MANUAL_CHECK[check_id],
        answer.code,
    )


def audience_check(answer: GraphAnswer, application_id: str) -> Check:
    """`app_audience`: the registration is single-tenant, as the linking guide asks."""
    if answer.status == 404:
        return Check(
            "app_audience",
            "warn",
            f"This tenant holds no app registration with application ID {application_id}: the "
            "app is registered in another organisation's tenant and used here as a multi-tenant "
            "app, so that tenant controls its certificates.",
            "Register a single-tenant app in your own tenant as the linking guide says, and link "
            "that app instead.",
            answer.code,
        )
    if not answer.ok:
        return _registration_not_read("app_audience", answer)
    audience = registrations.registration_of(answer.body).sign_in_audience
    if audience == registrations.SINGLE_TENANT:
        return Check(
            "app_audience",
            "pass",
            "The app registration is single-tenant (signInAudience AzureADMyOrg), as the "
            "linking guide asks.",
        )
    if audience is None:
        return Check(
            "app_audience",
            "skipped",
            "Not checked: Microsoft Graph's answer did not say who may sign in to the app "
            "(no signInAudience).",
            _MANUAL_CHECK["app_audience"],
        )
    return Check(
        "app_audience",
        "warn",
        f"The app registration accepts {_AUDIENCES.get(audience, audience)} (signInAudience "
        f"{audience}): any tenant could consent to this app and sign in with its certificate.",
        _SINGLE_TENANT_STEP,
    )


def credentials_check(
    answer: GraphAnswer,
    owners: registrations.Owners,
    now: datetime,
    federated: GraphAnswer | None = None,
) -> Check:
    """`app_credentials`: this account's credential is on the registration (its certificate,
    or its federated credential in `federated`, the registration's federatedIdentityCredentials),
    and no client secret, nor expired certificates, beside it."""
    if not answer.ok:
        return _registration_not_read("app_credentials", answer)
    if owners.subject and (federated is None or not federated.ok):
        return _registration_not_read("app_credentials", federated or answer)
    registration = registrations.registration_of(answer.body)
    if owners.subject:
        assert federated is not None
        mine, missing = _federated_missing(owners, federated)
    else:
        mine, missing = _certificate_missing(owners, registration)
    findings, steps = _others(registration, now)
    if missing:
        findings.insert(0, missing[0])
        steps.insert(0, missing[1])
    if not findings:
        return Check(
            "app_credentials",
            "pass",
            f"The app registration holds this account's {mine} and no client secret.",
        )
    return Check(
        "app_credentials",
        "warn",
        "The app registration " + "; it ".join(findings) + ".",
        "In the Entra admin center open App registrations > your app, then "
        + "; ".join(steps)
        + ".",
    )


def _certificate_missing(
    owners: registrations.Owners, registration: registrations.Registration
) -> tuple[str, tuple[str, str] | None]:
    mine = owners.this_account.upper()
    if any(c.thumbprint == mine for c in registration.certificates):
        return f"certificate ({mine})", None
    return f"certificate ({mine})", (
        f"does not list this account's certificate {mine}, so the next sign-in with it will fail",
        f"upload the certificate downloaded from the portal (thumbprint {mine}) under "
        "Certificates & secrets > Certificates > Upload certificate",
    )


def _federated_missing(
    owners: registrations.Owners, federated: GraphAnswer
) -> tuple[str, tuple[str, str] | None]:
    mine = f"federated credential (subject {owners.subject})"
    listed = registrations.federated_of(federated.body)
    if any(owners.federated_used_by(f) == "this-account" for f in listed):
        return mine, None
    return mine, (
        f"does not list this account's federated credential (issuer {owners.issuer}, subject "
        f"{owners.subject}, audience {owners.audience}), so the next sign-in with it will fail",
        "add it under Certificates & secrets > Federated credentials > Add credential > Other "
        "issuer with exactly that issuer, subject and audience",
    )


def _others(registration: registrations.Registration, now: datetime) -> tuple[list[str], list[str]]:
    """What should not be on the registration beside this account's credential."""
    findings: list[str] = []
    steps: list[str] = []
    if registration.client_secrets:
        count = registration.client_secrets
        hints = ", ".join(f"'{h}…'" for h in registration.secret_hints)
        findings.append(
            f"holds {count} client secret{'' if count == 1 else 's'}"
            f"{' (' + hints + ')' if hints else ''}: anyone holding that secret can read your "
            "tenant as this app; remove it under Certificates & secrets > Client secrets"
        )
        steps.append("delete every client secret under Certificates & secrets > Client secrets")
    old = registrations.expired(registration, now)
    if old:
        findings.append("still lists expired certificates: " + ", ".join(old))
        steps.append("delete the expired certificates under Certificates & secrets > Certificates")
    return findings, steps
