"""The checks of the plain Graph reads: the directory (`/organization`, whose name is compared
with the one the customer gave) and access reviews."""

from __future__ import annotations

from typing import Any

from shared.core.answers import GraphAnswer
from shared.verification.checks.answers import GraphRead
from shared.verification.checks.check import Check, unreachable

LICENCE_WORDS = ("licen",)  # licence, license, licensed, licensing

ORGANIZATION = GraphRead("organization", "/organization")
ACCESS_REVIEWS = GraphRead("access_reviews", "/identityGovernance/accessReviews/definitions?$top=1")


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
