"""The `certificate_expiry` check: how long the certificate is valid, and what it says about
renewal (the one in progress, or how to start one)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.support.timefmt import to_rfc3339
from shared.verification.checks.answers import Renewal
from shared.verification.checks.check import Check


def _add_step(renewal: Renewal, download: str) -> str:
    """Where the customer puts the new credential on the app registration."""
    if renewal.federation is not None:
        f = renewal.federation
        return (
            f"Add the new federated credential ({download}) under App registrations > your app > "
            "Certificates & secrets > Federated credentials > Add credential > Other issuer: "
            f"Issuer {f.issuer}, Subject identifier {f.subject}, Audience {f.audience} (or `az "
            "ad app federated-credential create --parameters <file>.json`), and keep the current "
            "credential until the account has switched."
        )
    return (
        f"Download the new certificate ({download}), upload it under App registrations > your "
        "app > Certificates & secrets > Certificates > Upload certificate, and keep the old one "
        "until the account has switched."
    )


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
    fmt = "json" if renewal.federation is not None else "cer"
    download = f"GET /api/keys/{renewal.key_id}?format={fmt}"
    if renewal.answer is not None and renewal.answer.error_code is not None:
        entra = f" Entra does not accept it yet (AADSTS{renewal.answer.error_code})."
    elif renewal.answer is None and renewal.key_failure is None:
        entra = " Its certificate has expired; start a new renewal."
    else:
        entra = ""
    if renewal.federation is not None:  # only the customer can add a federated credential
        return (
            f" A move to {renewal.named} is in progress: add it to the app registration "
            f"({download}).{entra}",
            _add_step(renewal, download),
        )
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
        _add_step(renewal, download),
    )


def _switched_words(renewal: Renewal) -> str:
    fresh = "new" if renewal.federation is not None else "renewed"
    said = f" Entra accepted the {fresh} {renewal.named}: the account now signs in with it."
    previous = (
        f"the previous certificate {renewal.replaces}"
        if renewal.replaces
        else "the previous federated credential"
    )
    if renewal.automatic and renewal.replaces:
        return (
            f"{said} The app removes {previous} from its app registration when the rotation's "
            "retirement window ends; nothing to do."
        )
    return (
        f"{said} Remove {previous} under App registrations > your app > Certificates & secrets "
        "once the rotation's retirement window ends (its retiresAt)."
    )


def expiry_check(
    not_after: datetime | None, now: datetime, warn_days: int, renewal: Renewal | None = None
) -> Check:
    """Pass only with MORE than `warn_days` left (exactly that many warns); `notAfter` itself is
    still inside the validity period (RFC 5280), so expired means `now` is past it. A warning
    names the renewal: the one in progress (its thumbprint and download) or how to start one.
    No `not_after`: a federated credential, which never expires."""
    said, renew = _renewal_words(renewal)
    if not_after is None:
        return Check(
            "certificate_expiry",
            "pass",
            f"The account signs in with a federated credential, which does not expire and is "
            f"never renewed.{said}",
        )
    remaining = not_after - now
    stamp = to_rfc3339(not_after)
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
