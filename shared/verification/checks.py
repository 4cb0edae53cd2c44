"""Turns what the tenant said into the verification report's checks. Pure: no I/O.

`STEPS` at the end of this module is the whole decision table: each check is one entry (its id,
its title, the checks it needs, and how it is decided from the gathered `Answers`), and `decide`
walks it in order. The skip rule exists only there: a check one of whose needs did not pass is
`skipped`, naming that step. The functions above the table decide one check each from one
answer (metadata, token, a Graph read), with the title, the detail and, for every `fail` and
`warn`, the concrete step the customer takes in the Entra admin center.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.core import app_registration as registrations
from shared.core import roles
from shared.core.answers import GraphAnswer, MetadataAnswer, TokenAnswer
from shared.support.timefmt import to_rfc3339

APPLICATION_CODES = {700016, 7000229, 7000112, 700025, 500011}
TENANT_CODES = {90002, 900023}
# Credential errors the customer fixes in Certificates & secrets (FACTS §2, §10). Any other code
# is an answer the app does not know: said so, never passed off as a missing certificate.
CERTIFICATE_CODES = {700027, 700024, 50013, 1000502, 7000215, 7000222}
LICENCE_WORDS = ("licen",)  # licence, license, licensed, licensing


@dataclass(frozen=True)
class GraphAnswers:
    """The Graph reads of one verification (one `$batch`); None: not read (no token, or the
    token's `wids` made `memberOf` unnecessary)."""

    organization: GraphAnswer | None = None
    access_reviews: GraphAnswer | None = None
    application: GraphAnswer | None = None
    member_of: GraphAnswer | None = None


@dataclass(frozen=True)
class Renewal:
    """A rotation awaiting its upload, and what Entra said to a token request with its new key
    in this verification (None: not asked, its certificate has expired)."""

    key_id: str
    thumbprint: str
    not_after: datetime
    automatic: bool = False
    add_key: str | None = None  # automatic renewal's addKey: pending | done | refused
    detail: str | None = None  # the rotation's own detail (Graph's words on a refusal)
    answer: TokenAnswer | None = None
    key_failure: str | None = None
    replaces: str = ""  # the thumbprint of the certificate this renewal replaces

    @property
    def accepted(self) -> bool:
        return self.answer is not None and self.answer.access_token is not None


@dataclass(frozen=True)
class Answers:
    """Everything one verification gathered, and the account facts the checks compare with."""

    tenant_id: str
    application_id: str
    thumbprint: str
    organization_name: str | None
    certificate_not_after: datetime
    now: datetime
    warn_days: int
    metadata: MetadataAnswer
    token: TokenAnswer | None = None  # None: not asked (tenant unknown, or the key unreadable)
    key_failure: str | None = None  # unavailable | missing | unusable (see key_read_checks)
    graph: GraphAnswers = GraphAnswers()
    # Certificates a rotation brings: listed as `rotation` / `previous` in appRegistration.
    rotation_thumbprints: frozenset[str] = frozenset()
    previous_thumbprints: frozenset[str] = frozenset()
    renewal: Renewal | None = None  # a rotation awaiting its upload
    switched_to: str | None = None  # Entra accepted the rotation's key: the checks are its
    download_path: str = ""  # where the account's certificate downloads

    @property
    def claims(self) -> dict[str, Any]:
        return self.token.claims if self.token and self.token.access_token else {}

    @property
    def owners(self) -> registrations.Owners:
        return registrations.Owners(
            self.thumbprint, self.rotation_thumbprints, self.previous_thumbprints
        )


@dataclass(frozen=True)
class Check:
    id: str
    status: str  # pass | warn | fail | skipped | error
    detail: str
    remediation: str | None = None
    code: str | None = None
    # A `skipped` check names the step that blocked it; never part of the report's JSON.
    blocked_by: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "title": TITLES[self.id],
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


# --- tenant ------------------------------------------------------------------------------------
def tenant_check(answer: MetadataAnswer, tenant_id: str) -> Check:
    if answer.document is not None:
        return Check(
            "tenant", "pass", f"Tenant {tenant_id} exists and publishes its sign-in metadata."
        )
    if answer.transient:
        return unreachable(
            "tenant", "The Entra ID sign-in service", answer.status, answer.description
        )
    code = answer.error_code
    invalid = code == 900023
    return Check(
        "tenant",
        "fail",
        (answer.description or f"Entra ID does not know tenant {tenant_id}.")
        + (
            " The tenant ID is not valid."
            if invalid
            else " No tenant with this ID exists in this cloud."
        ),
        "Copy the Directory (tenant) ID from the Entra admin center (Identity > Overview, or your "
        "app registration's Overview page) into the portal. If the tenant is in a national "
        "cloud (US Government, China), choose that cloud.",
        aadsts(code) or "AADSTS90002",
    )


# --- token -------------------------------------------------------------------------------------
def tenant_of(metadata: MetadataAnswer, token: TokenAnswer | None, tenant_id: str) -> Check:
    """The `tenant` check: the metadata, or the token endpoint denying the tenant."""
    if metadata.document is not None and token is not None and token.error_code in TENANT_CODES:
        return tenant_check(
            MetadataAnswer(error_code=token.error_code, description=token.description), tenant_id
        )
    return tenant_check(metadata, tenant_id)


def _known_credential_error(answer: TokenAnswer) -> bool:
    return answer.error_code in CERTIFICATE_CODES and not answer.unexpected


def application_check(
    answer: TokenAnswer | None, key_failure: str | None, *, tenant_id: str, application_id: str
) -> Check:
    """The token endpoint knows the application (an answer about the credential says so too)."""
    if key_failure is not None:
        return key_read_checks(key_failure)[0]
    if answer is None:
        return unreachable("application", "The Entra ID token endpoint", None, "not asked")
    if answer.error_code in TENANT_CODES:
        return skipped("application", "tenant")  # the token endpoint denied the tenant
    if answer.access_token or _known_credential_error(answer):
        return Check(
            "application",
            "pass",
            f"Entra ID knows application {application_id} in tenant {tenant_id}.",
        )
    if answer.transient:
        return unreachable(
            "application", "The Entra ID token endpoint", answer.status, answer.description
        )
    if answer.error_code in APPLICATION_CODES or answer.error == "unauthorized_client":
        return _application_failure(answer, tenant_id, application_id)
    return _unexpected_token_answer(answer)


def certificate_check(
    answer: TokenAnswer | None, key_failure: str | None, *, thumbprint: str
) -> Check:
    """Entra accepted the client assertion signed with the account's key."""
    if key_failure is not None:
        return key_read_checks(key_failure)[1]
    if answer is not None and answer.access_token:
        return Check(
            "certificate",
            "pass",
            f"Entra ID accepted a client assertion signed with the key of certificate "
            f"{thumbprint}.",
        )
    if answer is not None and _known_credential_error(answer):
        return _certificate_failure(answer, thumbprint)
    return skipped("certificate", "application")  # the application step decided


def _unexpected_token_answer(answer: TokenAnswer) -> Check:
    """An answer no rule here knows: an `error` that says what Entra said, never a guess."""
    code = aadsts(answer.error_code)
    said = answer.description or answer.error or "no description"
    if code and not said.startswith(code):
        said = f"{code}: {said}"
    return Check(
        "application",
        "error",
        f"Entra ID answered the token request unexpectedly ({said}), so neither the app "
        "registration nor its certificate could be judged.",
        "Verify again in a few minutes. If the same answer comes back, contact support and "
        "quote this text.",
        code,
    )


def key_read_checks(reason: str) -> list[Check]:
    """The `application` and `certificate` checks when the account's private key could not be
    used: `unavailable` (the key store did not answer: an error, retried later), `missing` or
    `unusable` (the key is gone or damaged: the customer links a new key)."""
    application = Check(
        "application",
        "skipped",
        "Not checked: no token was requested, because the account's private key could not be "
        "read from the key store (see the certificate check).",
        blocked_by="certificate",  # the key is read first: this step waits on that one
    )
    if reason == "unavailable":
        certificate = Check(
            "certificate",
            "error",
            "The key store holding the account's private key could not be reached, so no token "
            "was requested. This is usually temporary; the check runs again at the next "
            "verification.",
        )
    else:
        what = "is missing from" if reason == "missing" else "cannot be used from"
        certificate = Check(
            "certificate",
            "fail",
            f"The account's private key {what} the key store, so this certificate can no "
            "longer sign in.",
            "Generate a new key in the portal, upload its certificate under App registrations > "
            "your app > Certificates & secrets, and link the account again with the new key.",
        )
    return [application, certificate]


def _application_failure(answer: TokenAnswer, tenant_id: str, application_id: str) -> Check:
    code = answer.error_code
    if code == 7000229:
        remediation = (
            "The app has no service principal (Enterprise application) in this tenant. In the "
            "Entra admin center open App registrations > your app > API permissions and press "
            "'Grant admin consent', which creates it, or run "
            f"`az ad sp create --id {application_id}`."
        )
    elif code == 7000112:
        remediation = (
            "The application is disabled. In the Entra admin center open Enterprise applications > "
            "your app > Properties, set 'Enabled for users to sign-in?' to Yes and press Save."
        )
    elif code == 700025:
        remediation = (
            "The app is a public client. Open App registrations > your app > Authentication and "
            "set 'Allow public client flows' to No, then Save."
        )
    else:
        remediation = (
            "Copy the Application (client) ID from App registrations > your app > Overview in the "
            f"Entra admin center, and check the app is registered in tenant {tenant_id} "
            "(a single-tenant app of another tenant is not found here)."
        )
    return Check(
        "application",
        "fail",
        answer.description or f"Entra ID does not accept application {application_id} here.",
        remediation,
        aadsts(code),
    )


def _certificate_failure(answer: TokenAnswer, thumbprint: str) -> Check:
    code = answer.error_code
    if code == 700024:
        remediation = (
            "The client assertion was outside its valid time range, which points at a clock "
            "difference; verify again in a minute. If it persists, contact support."
        )
    else:
        remediation = (
            "In the Entra admin center open App registrations > your app > Certificates & "
            "secrets > Certificates > Upload certificate, and upload the certificate downloaded "
            f"from the portal (thumbprint {thumbprint}). A certificate uploaded moments ago can "
            "take a few minutes to be accepted: verify again shortly."
        )
    return Check(
        "certificate",
        "fail",
        answer.description or "Entra ID did not accept the certificate credential.",
        remediation,
        aadsts(code),
    )


# --- what the token grants ---------------------------------------------------------------------
def consent_check(claims: dict[str, Any]) -> Check:
    granted = claim_list(claims, "roles")
    if roles.REQUIRED_PERMISSION in granted:
        return Check("admin_consent", "pass", "The token carries AccessReview.Read.All.")
    return Check(
        "admin_consent",
        "fail",
        "The app's token does not carry the Microsoft Graph application permission "
        "AccessReview.Read.All: it is not added, or admin consent was not granted.",
        "In the Entra admin center open App registrations > your app > API permissions > Add a "
        "permission > Microsoft Graph > Application permissions, select AccessReview.Read.All, "
        "then press 'Grant admin consent for <your organisation>'.",
    )


def claim_list(claims: dict[str, Any], name: str) -> list[str]:
    """A list claim's strings (`roles`, `wids`); anything else in the claim counts as nothing."""
    values = claims.get(name)
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def role_ids_from_claims(claims: dict[str, Any]) -> list[str] | None:
    """The token's directory role template ids, or None when it carries no `wids` claim."""
    if claims.get("wids") is None:
        return None
    return [w.lower() for w in claim_list(claims, "wids")]


def role_ids_from_member_of(answer: GraphAnswer) -> list[str]:
    """Role template ids from `memberOf/microsoft.graph.directoryRole`: the cast already keeps
    only directory roles, so an entry may leave out its `@odata.type`; another type is ignored."""
    ids = []
    for entry in (answer.body or {}).get("value", []):
        kind = entry.get("@odata.type", "#microsoft.graph.directoryRole")
        if kind == "#microsoft.graph.directoryRole" and entry.get("roleTemplateId"):
            ids.append(str(entry["roleTemplateId"]).lower())
    return ids


_ROLE_REMEDIATION = (
    "In the Entra admin center open Roles & admins > Global Reader > Add assignments, select "
    "your app, and press Add. Role changes can take up to 15 minutes to apply."
)


def directory_role_check(role_ids: list[str], source: str) -> Check:
    if roles.GLOBAL_READER in role_ids:
        return Check("directory_role", "pass", f"The app holds the Global Reader role ({source}).")
    return Check(
        "directory_role",
        "fail",
        f"The app does not hold the Global Reader role ({source}).",
        _ROLE_REMEDIATION,
    )


def member_of_failure(answer: GraphAnswer) -> Check:
    if answer.transient and answer.status is None and answer.message:
        return Check(
            "directory_role",
            "error",
            f"The app's directory roles could not be read to the end: {answer.message}. The "
            "check runs again at the next verification.",
        )
    if answer.transient:
        return unreachable("directory_role", "Microsoft Graph", answer.status, answer.message)
    return Check(
        "directory_role",
        "fail",
        f"The app's directory roles could not be read (HTTP {answer.status}"
        f"{', ' + answer.code if answer.code else ''}); without Global Reader it cannot read them.",
        _ROLE_REMEDIATION,
        answer.code,
    )


_LEAST_PRIVILEGE_REMEDIATION = (
    "Remove what is not needed: App registrations > your app > API permissions > (…) > "
    "Remove permission, then grant admin consent again; and Roles & admins > the role > "
    "Assignments > select your app > Remove assignments."
)


def least_privilege_check(
    claims: dict[str, Any],
    role_ids: list[str] | None,
    source: str,
    roles_failure: GraphAnswer | None = None,
) -> Check:
    """Every permission must be a read permission and every role a read-only built-in role.

    `role_ids` is None when the roles could not be read (no `wids`, `memberOf` failed, see
    `roles_failure`): then the check is `error` (transient) or `skipped`, never `pass`.
    """
    permissions = sorted(set(claim_list(claims, "roles")))
    not_read = [p for p in permissions if not roles.is_read_permission(p)]
    if role_ids is None:
        also = (
            " Application permissions that are not read-only: " + ", ".join(not_read) + "."
            if not_read
            else ""
        )
        failure = roles_failure or GraphAnswer(status=None)
        answer = (
            failure.message
            if failure.status is None and failure.message
            else f"HTTP {failure.status}" + (f", {failure.code}" if failure.code else "")
        )
        if failure.transient:
            return Check(
                "least_privilege",
                "error",
                f"The app's directory roles could not be read ({answer}), so it is not known "
                "whether its access is read-only. The check runs again at the next "
                "verification." + also,
            )
        return Check(
            "least_privilege",
            "skipped",
            f"Not checked: the app's directory roles could not be read ({answer}), so it is not "
            "known whether its access is read-only." + also,
            code=failure.code,
        )
    unique = list(dict.fromkeys(r.lower() for r in role_ids))
    kinds = {r: roles.role_kind(r) for r in unique}
    writing = sorted(roles.role_name(r) for r, k in kinds.items() if k is roles.RoleKind.WRITES)
    unknown = sorted(r for r, k in kinds.items() if k is roles.RoleKind.UNKNOWN)
    read_only = sorted(
        roles.role_name(r) for r, k in kinds.items() if k is roles.RoleKind.READ_ONLY
    )
    if not not_read and not writing and not unknown:
        granted = ", ".join(permissions) if permissions else "none"
        held = ", ".join(read_only) if read_only else "none"
        return Check(
            "least_privilege",
            "pass",
            f"Every application permission of the app is a read permission ({granted}) and "
            f"every directory role it holds is a read-only built-in role ({held}); roles read "
            f"from the {source}.",
        )
    parts = []
    if not_read:
        parts.append("application permissions that are not read-only: " + ", ".join(not_read))
    if writing:
        parts.append("directory roles that can change the tenant: " + ", ".join(writing))
    if unknown:
        parts.append(
            "directory roles the app cannot name, so it cannot confirm they are read-only "
            "(custom roles?): " + ", ".join(unknown)
        )
    return Check(
        "least_privilege",
        "warn",
        "The portal needs read-only access, but the app also has " + "; ".join(parts) + ".",
        _LEAST_PRIVILEGE_REMEDIATION,
    )


# --- Graph reads -------------------------------------------------------------------------------
def directory_read_check(answer: GraphAnswer) -> Check:
    if answer.ok:
        return Check("directory_read", "pass", "GET /v1.0/organization succeeded.")
    if answer.transient:
        return unreachable("directory_read", "Microsoft Graph", answer.status, answer.message)
    return Check(
        "directory_read",
        "fail",
        f"GET /v1.0/organization was refused (HTTP {answer.status}): "
        f"{answer.message or 'no reason given'}",
        "Assign the Global Reader role to the app (Roles & admins > Global Reader > Add "
        "assignments). Role changes can take up to 15 minutes to apply.",
        answer.code,
    )


def _is_licence_error(answer: GraphAnswer) -> bool:
    code = (answer.code or "").lower()
    message = (answer.message or "").lower()
    return (
        "license" in code
        or "licence" in code
        or (answer.status == 403 and any(w in message for w in LICENCE_WORDS))
    )


def access_reviews_check(answer: GraphAnswer) -> Check:
    if answer.ok:
        return Check(
            "access_reviews_read",
            "pass",
            "GET /v1.0/identityGovernance/accessReviews/definitions succeeded.",
        )
    if answer.transient:
        return unreachable("access_reviews_read", "Microsoft Graph", answer.status, answer.message)
    if _is_licence_error(answer):
        return Check(
            "access_reviews_read",
            "warn",
            "The tenant has no licence for access reviews: "
            f"{answer.message or answer.code or 'a licence is required'}",
            "Access reviews need Microsoft Entra ID P2 or Microsoft Entra ID Governance licences. "
            "Buy or start a trial under Billing > Licenses in the Microsoft 365 admin center; "
            "the rest of the connection works meanwhile.",
            answer.code,
        )
    return Check(
        "access_reviews_read",
        "fail",
        f"Reading access reviews was refused (HTTP {answer.status}): "
        f"{answer.message or 'no reason given'}",
        "Add the Microsoft Graph application permission AccessReview.Read.All under App "
        "registrations > your app > API permissions and press 'Grant admin consent'.",
        answer.code,
    )


def organization_of(answer: GraphAnswer) -> dict[str, Any] | None:
    values = (answer.body or {}).get("value") or []
    if not values:
        return None
    org = values[0]
    return {
        "id": org.get("id"),
        "displayName": org.get("displayName"),
        "verifiedDomains": [
            d.get("name") for d in org.get("verifiedDomains") or [] if d.get("name")
        ],
    }


def organization_check(expected: str | None, organization: dict[str, Any] | None) -> Check:
    if not expected:
        return Check("organization_match", "pass", "No organisation name was given to compare.")
    if organization is None:
        return Check(
            "organization_match",
            "warn",
            "Microsoft Graph returned no organisation to compare with.",
            "Check that the tenant ID is the one of your organisation.",
        )
    names = [str(n) for n in organization.get("verifiedDomains") or []]
    display = str(organization.get("displayName") or "")
    wanted = expected.strip().casefold()
    if wanted in {n.casefold() for n in names} or wanted == display.casefold():
        return Check("organization_match", "pass", f"'{expected}' matches the tenant '{display}'.")
    return Check(
        "organization_match",
        "warn",
        f"'{expected}' matches neither the tenant's name '{display}' nor its verified domains: "
        f"{', '.join(names) or 'none'}.",
        "Correct the organisation name in the portal to one of the verified domains above, or "
        "check that you linked the tenant you intended.",
    )


# --- certificate validity ----------------------------------------------------------------------
def _renewal_words(renewal: Renewal | None) -> tuple[str, str]:
    """What the certificate_expiry check says about renewal: a sentence for the detail and
    the remediation."""
    start = (
        "Start a renewal with Renew in the portal (POST /api/accounts/{id}/rotation; the health "
        "check also starts one by itself inside the warning window), upload the new certificate "
        "under App registrations > your app > Certificates & secrets, and leave the old one "
        "until the account has switched."
    )
    if renewal is None:
        return "", start
    if renewal.accepted:  # this verification switched: nothing is left to upload
        return _switched_words(renewal), start
    download = f"GET /api/keys/{renewal.key_id}?format=cer"
    if renewal.answer is not None and renewal.answer.error_code is not None:
        entra = f" Entra does not accept it yet (AADSTS{renewal.answer.error_code})."
    elif renewal.answer is None and renewal.key_failure is None:
        entra = " Its certificate has expired; start a new renewal."
    else:
        entra = ""
    if renewal.automatic and renewal.add_key == "refused":
        said = f" Automatic renewal could not add it: {renewal.detail}" if renewal.detail else ""
        step = (
            f"Upload the new certificate {renewal.thumbprint} ({download}) under App "
            "registrations > your app > Certificates & secrets."
        )
        return (
            f" A renewal is in progress with certificate {renewal.thumbprint}.{said}{entra}",
            step,
        )
    if not renewal.automatic and renewal.add_key == "done":  # handed over after the app added it
        return (
            f" A renewal is in progress: certificate {renewal.thumbprint} is already on the app "
            f"registration (the app added it before renewal was switched to manual).{entra}",
            "Nothing to upload: the account switches to the new certificate once Entra accepts "
            "it (usually within minutes).",
        )
    if renewal.automatic:
        return (
            f" A renewal is in progress: the app adds certificate {renewal.thumbprint} to its "
            f"app registration itself.{entra}",
            "Nothing to do: the account switches to the new certificate once Entra accepts it "
            "(usually within minutes).",
        )
    return (
        f" A renewal is in progress: upload certificate {renewal.thumbprint} ({download}).{entra}",
        f"Download the new certificate ({download}), upload it under App registrations > your "
        "app > Certificates & secrets > Certificates > Upload certificate, and keep the old one "
        "until the account has switched.",
    )


def _switched_words(renewal: Renewal) -> str:
    said = (
        f" Entra accepted the renewed certificate {renewal.thumbprint}: the account now signs in "
        "with it."
    )
    if renewal.automatic:
        return (
            f"{said} The app removes the previous certificate {renewal.replaces} from its app "
            "registration when the rotation's retirement window ends; nothing to do."
        )
    return (
        f"{said} Remove the previous certificate {renewal.replaces} under App registrations > "
        "your app > Certificates & secrets once the rotation's retirement window ends "
        "(its retiresAt)."
    )


def expiry_check(
    not_after: datetime, now: datetime, warn_days: int, renewal: Renewal | None = None
) -> Check:
    """Pass only with MORE than `warn_days` left (exactly that many warns); `notAfter` itself is
    still inside the validity period (RFC 5280), so expired means `now` is past it. A warning
    names the renewal: the one in progress (its thumbprint and download) or how to start one."""
    remaining = not_after - now
    stamp = to_rfc3339(not_after)
    said, renew = _renewal_words(renewal)
    if remaining < timedelta(0):
        return Check(
            "certificate_expiry", "fail", f"The certificate expired on {stamp}.{said}", renew
        )
    if remaining <= timedelta(days=warn_days):
        days = remaining.days
        left = f"in {days} day{'' if days == 1 else 's'}" if days else "in less than a day"
        return Check(
            "certificate_expiry",
            "warn",
            f"The certificate expires on {stamp}, {left}.{said}",
            renew,
        )
    return Check(
        "certificate_expiry",
        "pass",
        f"The certificate is valid until {stamp} ({remaining.days} days).{said}",
    )


# --- the app registration ------------------------------------------------------------------------
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
        "this account's certificate and no client secret."
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


def credentials_check(answer: GraphAnswer, owners: registrations.Owners, now: datetime) -> Check:
    """`app_credentials`: this account's certificate is on the registration, and no client
    secret, nor expired certificates, beside it."""
    if not answer.ok:
        return _registration_not_read("app_credentials", answer)
    registration = registrations.registration_of(answer.body)
    mine = owners.this_account.upper()
    findings: list[str] = []
    steps: list[str] = []
    if all(c.thumbprint != mine for c in registration.certificates):
        findings.append(
            f"does not list this account's certificate {mine}, so the next sign-in with it will "
            "fail"
        )
        steps.append(
            f"upload the certificate downloaded from the portal (thumbprint {mine}) under "
            "Certificates & secrets > Certificates > Upload certificate"
        )
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
    if not findings:
        return Check(
            "app_credentials",
            "pass",
            f"The app registration holds this account's certificate ({mine}) and no client secret.",
        )
    return Check(
        "app_credentials",
        "warn",
        "The app registration " + "; it ".join(findings) + ".",
        "In the Entra admin center open App registrations > your app, then "
        + "; ".join(steps)
        + ".",
    )


# --- how the answers decide each check -----------------------------------------------------------
_NOT_READ = GraphAnswer(status=None, transient=True, message="not read")
_WIDS = "token's wids claim"
_MEMBER_OF = "service principal's memberOf"


def _read(answer: GraphAnswer | None) -> GraphAnswer:
    return answer if answer is not None else _NOT_READ


@dataclass(frozen=True)
class RolesRead:
    ids: list[str] | None  # None: could not be read (no `wids`, `memberOf` failed)
    found: list[str]  # what was read, a partial listing included
    source: str
    failure: GraphAnswer | None = None


def roles_read(answers: Answers) -> RolesRead:
    """The app's directory role template ids: the token's `wids`, or else `memberOf`."""
    from_claims = role_ids_from_claims(answers.claims)
    if from_claims is not None:
        return RolesRead(from_claims, from_claims, _WIDS)
    member_of = _read(answers.graph.member_of)
    found = role_ids_from_member_of(member_of)
    if member_of.ok:
        return RolesRead(found, found, _MEMBER_OF)
    return RolesRead(None, found, _MEMBER_OF, member_of)


def _directory_role(answers: Answers) -> Check:
    read = roles_read(answers)
    if read.source == _WIDS:
        return directory_role_check(read.found, "token wids claim")
    if read.ids is not None or roles.GLOBAL_READER in read.found:
        return directory_role_check(read.found, "service principal memberOf")  # a page counts
    return member_of_failure(read.failure or _NOT_READ)


def _least_privilege(answers: Answers) -> Check:
    read = roles_read(answers)
    return least_privilege_check(answers.claims, read.ids, read.source, read.failure)


# --- the decision table ----------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    id: str
    title: str
    needs: tuple[str, ...]  # checks that must pass first; else this one is skipped
    decide: Callable[[Answers], Check]


STEPS: tuple[Step, ...] = (
    Step(
        "tenant",
        "Tenant found",
        (),
        lambda a: tenant_of(a.metadata, a.token, a.tenant_id),
    ),
    Step(
        "application",
        "App registration found in the tenant",
        ("tenant",),
        lambda a: application_check(
            a.token, a.key_failure, tenant_id=a.tenant_id, application_id=a.application_id
        ),
    ),
    Step(
        "certificate",
        "Certificate accepted by Entra ID",
        ("application",),
        lambda a: certificate_check(a.token, a.key_failure, thumbprint=a.thumbprint),
    ),
    Step(
        "admin_consent",
        "Admin consent granted for AccessReview.Read.All",
        ("certificate",),
        lambda a: consent_check(a.claims),
    ),
    Step(
        "directory_role",
        "Global Reader role assigned to the app",
        ("certificate",),
        _directory_role,
    ),
    Step(
        "directory_read",
        "Directory readable through Microsoft Graph",
        ("certificate",),
        lambda a: directory_read_check(_read(a.graph.organization)),
    ),
    Step(
        "access_reviews_read",
        "Access reviews readable through Microsoft Graph",
        ("certificate",),
        lambda a: access_reviews_check(_read(a.graph.access_reviews)),
    ),
    Step(
        "organization_match",
        "Organisation name matches the tenant",
        ("directory_read",),
        lambda a: organization_check(
            a.organization_name, organization_of(_read(a.graph.organization))
        ),
    ),
    Step(
        "least_privilege",
        "Access is read-only",
        ("certificate",),
        _least_privilege,
    ),
    Step(
        "certificate_expiry",
        "Certificate valid",
        (),
        lambda a: expiry_check(a.certificate_not_after, a.now, a.warn_days, a.renewal),
    ),
    Step(
        "app_audience",
        "App registration is single-tenant",
        ("certificate",),
        lambda a: audience_check(_read(a.graph.application), a.application_id),
    ),
    Step(
        "app_credentials",
        "App registration holds this certificate and no client secret",
        ("certificate",),
        lambda a: credentials_check(_read(a.graph.application), a.owners, a.now),
    ),
)
CHECK_ORDER: tuple[str, ...] = tuple(s.id for s in STEPS)
TITLES: dict[str, str] = {s.id: s.title for s in STEPS}
NEEDS: dict[str, tuple[str, ...]] = {s.id: s.needs for s in STEPS}


def blocker_of(step: Step, results: dict[str, Check]) -> str | None:
    """The first check `step` needs that did not pass; a check skipped because of `step`
    itself (the key is read before the token is asked for) does not block it."""
    for need in step.needs:
        done = results[need]
        if done.status != "pass" and done.blocked_by != step.id:
            return need
    return None


def decide(answers: Answers) -> list[Check]:
    """Every check, in table order: skipped when a check it needs did not pass, else decided."""
    results: dict[str, Check] = {}
    for step in STEPS:
        blocker = blocker_of(step, results)
        results[step.id] = skipped(step.id, blocker) if blocker else step.decide(answers)
    return list(results.values())


def report_facts(answers: Answers) -> dict[str, Any]:
    """What the report shows beside the checks: what Graph and the token said."""
    organization = answers.graph.organization
    application = answers.graph.application
    has_token = answers.token is not None and answers.token.access_token is not None
    role_ids = (roles_read(answers).ids if has_token else None) or []
    return {
        "organization": organization_of(organization)
        if organization is not None and organization.ok
        else None,
        "grantedPermissions": sorted(claim_list(answers.claims, "roles")),
        "directoryRoles": roles.shown_roles(role_ids),
        "appRegistration": registrations.registration_json(
            registrations.registration_of(application.body), answers.owners
        )
        if application is not None and application.ok
        else None,
    }


def overall_status(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    if "fail" in statuses:
        return "action_required"
    if "error" in statuses:
        return "error"
    return "connected"
