"""The `tenant` check: the tenant's OpenID metadata, or the token endpoint denying the tenant."""

from __future__ import annotations

from shared.core.answers import MetadataAnswer, TokenAnswer
from shared.verification.checks.check import Check, aadsts, unreachable

# AADSTS codes of a tenant Entra does not know (90002) or that is not valid (900023).
TENANT_CODES = {90002, 900023}


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


def tenant_of(metadata: MetadataAnswer, token: TokenAnswer | None, tenant_id: str) -> Check:
    """The `tenant` check: the metadata, or the token endpoint denying the tenant."""
    if metadata.document is not None and token is not None and token.error_code in TENANT_CODES:
        return tenant_check(
            MetadataAnswer(error_code=token.error_code, description=token.description), tenant_id
        )
    return tenant_check(metadata, tenant_id)
