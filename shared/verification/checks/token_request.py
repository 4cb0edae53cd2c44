"""The `application` and `certificate` checks: what the token endpoint said to the client
assertion signed with the account's key, or why no token was asked for (the key unreadable)."""

from __future__ import annotations

from shared.core.answers import TokenAnswer
from shared.verification.checks.check import Check, aadsts, skipped, unreachable
from shared.verification.checks.federated import FEDERATED_CODES
from shared.verification.checks.tenant import TENANT_CODES

APPLICATION_CODES = {700016, 7000229, 7000112, 700025, 500011}
# Credential errors the customer fixes in Certificates & secrets (FACTS §2, §10). Any other code
# is an answer the app does not know: said so, never passed off as a missing certificate.
CERTIFICATE_CODES = {700027, 700024, 50013, 1000502, 7000215, 7000222}


def _known_credential_error(answer: TokenAnswer) -> bool:
    """An answer about the credential (a certificate's or a federated one's): Entra found the
    application to judge it."""
    known = CERTIFICATE_CODES | FEDERATED_CODES
    return answer.error_code in known and not answer.unexpected


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
