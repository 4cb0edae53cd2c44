"""The rules a setting's value must meet where more than a range is at stake: URLs that must be
https (and, in Azure, a real Key Vault), connection strings Azure refuses, and the OpenID issuer
customers' federated credentials name. Each adds to `problems` a message that names the setting
and never repeats its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlparse

from shared.core.clouds import KEY_VAULT_HOST_SUFFIXES, is_key_vault_host

# Core Tools' default port; the local host sets OIDC_ISSUER to its own URL (localdev).
DEFAULT_LOCAL_ISSUER = "http://127.0.0.1:7071/api/oidc"


def https_url(name: str, value: str, problems: list[str], *, allow_path: bool = True) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.netloc:
        problems.append(f"{name} must be an https:// URL")
    elif not allow_path and parsed.path not in ("", "/"):
        problems.append(f"{name} must be a bare https:// origin without a path")
    return value.rstrip("/")


def vault_url(value: str, in_azure: bool, problems: list[str]) -> str:
    """In Azure only a real vault may receive the identity's token (the SDK's challenge check
    stays on for it); outside Azure a stand-in on any https host is fine."""
    url = https_url("KEY_VAULT_URL", value, problems)
    parsed = urlparse(url)
    if in_azure and parsed.scheme == "https":
        try:
            port = parsed.port
        except ValueError:
            port = -1
        if (
            parsed.username is not None
            or port not in (None, 443)
            or not is_key_vault_host(parsed.hostname or "")
        ):
            problems.append(
                "KEY_VAULT_URL must be a Key Vault in Azure (WEBSITE_INSTANCE_ID is set): "
                "https://<name>." + ", or <name>.".join(KEY_VAULT_HOST_SUFFIXES) + "; behind a "
                "private endpoint keep the vault's own name, which Azure DNS resolves privately"
            )
    return url


def connection_string_problem(connection_string: str) -> str | None:
    """Why Azure refuses this Table connection string, or None: storage is reached over HTTPS
    only, never the emulator. Only key names are looked at, so no value reaches a message."""
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return "UseDevelopmentStorage=true (the storage emulator)"
    if fields.get("defaultendpointsprotocol", "https").lower() != "https":
        return "DefaultEndpointsProtocol other than https"
    for name, value in fields.items():
        if name.endswith("endpoint") and urlparse(value).scheme.lower() != "https":
            return "an endpoint that is not https://"
    return None


def oidc_issuer(env: Mapping[str, str], in_azure: bool, problems: list[str]) -> str:
    """OIDC_ISSUER, or the app's own `/api/oidc`. Customers' credentials name it exactly, so it
    is never rewritten here: a trailing slash or a query is refused, not trimmed, and in Azure
    only https is accepted (Entra fetches the issuer's documents over public HTTPS)."""
    raw = env.get("OIDC_ISSUER", "").strip()
    if not raw:
        host = env.get("WEBSITE_HOSTNAME", "").strip()
        if in_azure:  # the platform sets WEBSITE_HOSTNAME; without it, no issuer is published
            return f"https://{host}/api/oidc" if host else ""
        return DEFAULT_LOCAL_ISSUER
    parsed = urlparse(raw)
    allowed = ("https",) if in_azure else ("https", "http")
    if parsed.scheme not in allowed or not parsed.netloc:
        problems.append(
            "OIDC_ISSUER must be an https:// URL"
            + (" in Azure (WEBSITE_INSTANCE_ID is set)" if in_azure else " (or http:// locally)")
        )
    elif raw.endswith("/") or parsed.query or parsed.fragment or parsed.username is not None:
        problems.append(
            "OIDC_ISSUER must not end with '/' or hold a query, fragment or user name: "
            "Entra matches the issuer exactly"
        )
    return raw
