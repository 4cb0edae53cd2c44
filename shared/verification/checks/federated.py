"""The `certificate` check of an account that signs in with a federated credential: whether
Entra accepted the issuer's assertion for the credential's subject (FACTS §12).

Entra's answers fall in two groups. No credential on the app matches the assertion's issuer,
subject and audience (exactly, case-sensitive): the customer's configuration, a `fail` naming
the exact values to enter. Entra could not fetch the issuer's documents or did not find the
signing key in the JWKS it holds: the service's issuer, an `error` the customer does nothing
about.
"""

from __future__ import annotations

from shared.core.answers import TokenAnswer
from shared.core.federation import Federation
from shared.verification.checks.check import Check, aadsts, skipped

NO_MATCHING_CREDENTIAL = {70021, 700211, 700212, 700213, 7002137, 7002138}
ISSUER_NOT_REACHED = {50166, 90061, 501661, 7000272}
FEDERATED_CODES = NO_MATCHING_CREDENTIAL | ISSUER_NOT_REACHED
_WHAT = {
    700211: "issuer",
    700212: "audience",
    700213: "subject",
    7002137: "subject",
    7002138: "subject (Entra compares it case-sensitively)",
}


def federated_check(
    answer: TokenAnswer | None,
    key_failure: str | None,
    federation: Federation,
    *,
    application_id: str,
    download_path: str,
) -> Check:
    """Entra accepted the issuer's assertion for this account's federated credential."""
    named = f"issuer {federation.issuer}, subject {federation.subject}"
    if key_failure is not None:
        return _not_signed(key_failure)
    if answer is not None and answer.access_token:
        return Check(
            "certificate",
            "pass",
            f"Entra ID accepted the service's assertion for the app's federated credential "
            f"({named}).",
        )
    code = answer.error_code if answer is not None else None
    if answer is None or code not in FEDERATED_CODES or answer.unexpected:
        if answer is not None and code == 700024:
            return _clock(answer)
        return skipped("certificate", "application")  # the application step decided
    if code in ISSUER_NOT_REACHED:
        return Check(
            "certificate",
            "error",
            f"Entra ID could not check the federated credential ({named}): it could not reach "
            "this service's OpenID issuer or did not yet find its signing key there. This is "
            "the service's issuer, not your setting: change nothing; the check runs again at "
            "the next verification.",
            None,
            aadsts(code),
        )
    return _no_match(answer, federation, application_id=application_id, download=download_path)


def _no_match(
    answer: TokenAnswer, federation: Federation, *, application_id: str, download: str
) -> Check:
    code = answer.error_code
    which = _WHAT.get(code or 0)
    said = f"its {which} does not match" if which else "none matches"
    return Check(
        "certificate",
        "fail",
        f"The app registration has no federated credential that matches the service's "
        f"assertion ({said}). Entra matches issuer, subject and audience exactly and "
        "case-sensitively.",
        "In the Entra admin center open App registrations > your app > Certificates & secrets > "
        "Federated credentials > Add credential, choose 'Other issuer' and enter exactly: "
        f"Issuer {federation.issuer} (no trailing slash), Subject identifier "
        f"{federation.subject}, Audience {federation.audience}. Or download the credential "
        f"({download}) and run `az ad app federated-credential create --id {application_id} "
        "--parameters <file>.json`. A credential added moments ago can take a few minutes to "
        "be accepted: verify again shortly.",
        aadsts(code),
    )


def _clock(answer: TokenAnswer) -> Check:
    return Check(
        "certificate",
        "error",
        answer.description or "Entra ID found the assertion outside its valid time range.",
        "This points at a clock difference at the service; verify again in a minute. If it "
        "persists, contact support.",
        aadsts(answer.error_code),
    )


def _not_signed(reason: str) -> Check:
    """The assertion could not be made: the issuer key's store did not answer (an error,
    retried), or the credential's record is gone (unlinked): link again."""
    if reason == "unavailable":
        return Check(
            "certificate",
            "error",
            "The service's issuer key could not sign the federated assertion (its key store "
            "did not answer), so no token was requested. This is the service's side: change "
            "nothing; the check runs again at the next verification.",
        )
    return Check(
        "certificate",
        "fail",
        "This account's federated credential no longer exists in the service, so it can no "
        "longer sign in.",
        "Create a new federated credential in the portal, add it to the app registration, and "
        "link the account again with it.",
    )
