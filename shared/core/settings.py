"""Every setting the app reads, validated once into one frozen object.

A missing or invalid setting raises `SettingsInvalid`, whose message names each bad setting and
says what to set, so the operator sees the fix in the first log line. A message never repeats a
setting's value: connection strings hold account keys, and the message reaches logs and the
problem details of every route.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.core.errors import ConfigurationError
from shared.core.setting_values import (
    DEFAULT_LOCAL_ISSUER,
    connection_string_problem,
    https_url,
    oidc_issuer,
    vault_url,
)

DEFAULT_JWKS_URI = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
DEFAULT_SCHEDULE = "0 */10 * * * *"  # every 10 minutes; each run takes the due accounts
ACCOUNTS_CONNECTION = "ACCOUNTS_STORAGE"


class SettingsInvalid(ConfigurationError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid settings: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class AuthSettings:
    mode: str  # "entra" or "local"
    audiences: tuple[str, ...] = ()
    issuer: str = ""
    jwks_uri: str = DEFAULT_JWKS_URI
    owner_claim: str = "tid"


@dataclass(frozen=True)
class TableSettings:
    """The account store's Table Storage connection, after the Functions convention."""

    table_name: str
    connection_string: str | None = None
    table_service_uri: str | None = None
    managed_identity_client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    auth: AuthSettings
    local_state_dir: Path
    key_vault_url: str | None
    table: TableSettings | None
    entra_authority_host: str | None
    graph_endpoint: str | None
    health_check_schedule: str
    health_check_concurrency: int
    health_check_budget_seconds: int
    cert_expiry_warning_days: int
    running_in_azure: bool
    verify_timeout_seconds: int = 60
    unlinked_key_retention_days: int = 7
    history_retention_days: int = 90
    key_retirement_days: int = 7
    health_check_interval_hours: int = 6
    key_custody: str = "local"  # where new keys go: vault-key | vault-secret | local
    key_vault_hsm: bool = False
    # The OpenID issuer customers' federated credentials trust (never ends with "/": Entra
    # matches the issuer exactly; "" when Azure gave no host name and none was set: then no
    # federated credential can be made), and how often its signing key is replaced.
    oidc_issuer: str = DEFAULT_LOCAL_ISSUER
    oidc_key_rotation_days: int = 180

    @property
    def custodies(self) -> tuple[str, ...]:
        """Every custody whose keys this app can reach: keys keep the custody they were made
        with, so keys made before KEY_CUSTODY or KEY_VAULT_URL changed keep working."""
        reachable = ("vault-key", "vault-secret") if self.key_vault_url else ()
        return reachable + (() if self.running_in_azure else ("local",))

    @property
    def key_store_backend(self) -> str:
        return "keyvault" if self.key_vault_url else "local"

    @property
    def account_store_backend(self) -> str:
        return "table" if self.table else "sqlite"


def _int(
    env: Mapping[str, str], name: str, default: int, lo: int, hi: int, problems: list[str]
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be an integer between {lo} and {hi}")
        return default
    if not lo <= value <= hi:
        problems.append(f"{name} must be between {lo} and {hi}")
    return value


def _auth(env: Mapping[str, str], in_azure: bool, problems: list[str]) -> AuthSettings:
    mode = env.get("AUTH_MODE", "entra").strip().lower() or "entra"
    if mode not in ("entra", "local"):
        problems.append("AUTH_MODE must be 'entra' or 'local'")
        mode = "entra"
    if mode == "local":
        if in_azure:
            problems.append(
                "AUTH_MODE=local is refused in Azure (WEBSITE_INSTANCE_ID is set): "
                "set AUTH_MODE=entra with AUTH_AUDIENCE and AUTH_ISSUER"
            )
        return AuthSettings(mode="local")
    audiences = tuple(a.strip() for a in env.get("AUTH_AUDIENCE", "").split(",") if a.strip())
    if not audiences:
        problems.append(
            "AUTH_AUDIENCE is required when AUTH_MODE=entra: set the portal API's application ID "
            "URI or client ID (comma-separated for several)"
        )
    issuer = env.get("AUTH_ISSUER", "").strip()
    if not issuer:
        problems.append(
            "AUTH_ISSUER is required when AUTH_MODE=entra: for example "
            "https://login.microsoftonline.com/{tid}/v2.0"
        )
    jwks_uri = https_url(
        "AUTH_JWKS_URI", env.get("AUTH_JWKS_URI", "").strip() or DEFAULT_JWKS_URI, problems
    )
    owner_claim = env.get("AUTH_OWNER_CLAIM", "").strip() or "tid"
    return AuthSettings("entra", audiences, issuer, jwks_uri, owner_claim)


def _table(env: Mapping[str, str], in_azure: bool, problems: list[str]) -> TableSettings | None:
    name = env.get("ACCOUNTS_TABLE_NAME", "").strip() or "linkedaccounts"
    if not (3 <= len(name) <= 63 and name.isalnum() and name[0].isalpha()):
        problems.append(
            "ACCOUNTS_TABLE_NAME must be 3-63 letters or digits, starting with a letter"
        )
    connection_string = env.get(ACCOUNTS_CONNECTION, "").strip()
    service_uri = env.get(f"{ACCOUNTS_CONNECTION}__tableServiceUri", "").strip()
    if connection_string and service_uri:
        problems.append(
            f"set either {ACCOUNTS_CONNECTION} (connection string) or "
            f"{ACCOUNTS_CONNECTION}__tableServiceUri (identity-based), not both"
        )
    if connection_string:
        refused = connection_string_problem(connection_string) if in_azure else None
        if refused:
            problems.append(
                f"{ACCOUNTS_CONNECTION} is refused in Azure (WEBSITE_INSTANCE_ID is set): it "
                f"names {refused}; use {ACCOUNTS_CONNECTION}__tableServiceUri with the app's "
                "managed identity, or a connection string with https endpoints"
            )
        return TableSettings(name, connection_string=connection_string)
    if service_uri:
        client_id = env.get(f"{ACCOUNTS_CONNECTION}__clientId", "").strip() or None
        return TableSettings(
            name,
            table_service_uri=https_url(
                f"{ACCOUNTS_CONNECTION}__tableServiceUri", service_uri, problems
            ),
            managed_identity_client_id=client_id,
        )
    return None


def _custody(env: Mapping[str, str], vault: bool, problems: list[str]) -> tuple[str, bool]:
    custody = env.get("KEY_CUSTODY", "").strip().lower()
    hsm_raw = env.get("KEY_VAULT_HSM", "").strip().lower() or "false"
    if hsm_raw not in ("true", "false"):
        problems.append("KEY_VAULT_HSM must be 'true' or 'false'")
    hsm = hsm_raw == "true"
    if not vault:
        if custody and custody != "local":
            problems.append("KEY_CUSTODY needs KEY_VAULT_URL: set the vault's URL")
        return "local", hsm
    if custody in ("", "vault-key"):
        return "vault-key", hsm
    if custody == "vault-secret":
        return custody, hsm
    problems.append("KEY_CUSTODY must be 'vault-key' or 'vault-secret' when KEY_VAULT_URL is set")
    return "vault-key", hsm


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise `SettingsInvalid` naming each problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    in_azure = bool(env.get("WEBSITE_INSTANCE_ID"))
    auth = _auth(env, in_azure, problems)
    key_vault_url = env.get("KEY_VAULT_URL", "").strip() or None
    if key_vault_url:
        key_vault_url = vault_url(key_vault_url, in_azure, problems)
    authority = env.get("ENTRA_AUTHORITY_HOST", "").strip() or None
    if authority:
        authority = https_url("ENTRA_AUTHORITY_HOST", authority, problems, allow_path=False)
    graph = env.get("GRAPH_ENDPOINT", "").strip() or None
    if graph:
        graph = https_url("GRAPH_ENDPOINT", graph, problems, allow_path=False)
    custody, hsm = _custody(env, bool(key_vault_url), problems)
    schedule = env.get("HEALTH_CHECK_SCHEDULE", "").strip() or DEFAULT_SCHEDULE
    if len(schedule.split()) != 6:
        problems.append("HEALTH_CHECK_SCHEDULE must be a six-field NCRONTAB expression")
    settings = Settings(
        auth=auth,
        local_state_dir=Path(env.get("LOCAL_STATE_DIR", "").strip() or ".local"),
        key_vault_url=key_vault_url,
        table=_table(env, in_azure, problems),
        entra_authority_host=authority,
        graph_endpoint=graph,
        health_check_schedule=schedule,
        health_check_concurrency=_int(env, "HEALTH_CHECK_CONCURRENCY", 8, 1, 64, problems),
        # Below host.json's functionTimeout (10 min), so a run ends cleanly rather than killed.
        health_check_budget_seconds=_int(
            env, "HEALTH_CHECK_TIME_BUDGET_SECONDS", 480, 1, 3600, problems
        ),
        cert_expiry_warning_days=_int(env, "CERT_EXPIRY_WARNING_DAYS", 30, 0, 365, problems),
        running_in_azure=in_azure,
        verify_timeout_seconds=_int(env, "VERIFY_TIMEOUT_SECONDS", 60, 5, 600, problems),
        unlinked_key_retention_days=_int(env, "UNLINKED_KEY_RETENTION_DAYS", 7, 1, 90, problems),
        history_retention_days=_int(env, "HISTORY_RETENTION_DAYS", 90, 1, 3650, problems),
        key_retirement_days=_int(env, "KEY_RETIREMENT_DAYS", 7, 0, 90, problems),
        health_check_interval_hours=_int(env, "HEALTH_CHECK_INTERVAL_HOURS", 6, 0, 168, problems),
        key_custody=custody,
        key_vault_hsm=hsm,
        oidc_issuer=oidc_issuer(env, in_azure, problems),
        oidc_key_rotation_days=_int(env, "OIDC_KEY_ROTATION_DAYS", 180, 30, 730, problems),
    )
    if in_azure and (not settings.key_vault_url or not settings.table):
        problems.append(
            "in Azure the embedded stores are refused: set KEY_VAULT_URL and "
            f"{ACCOUNTS_CONNECTION}__tableServiceUri (or {ACCOUNTS_CONNECTION})"
        )
    if problems:
        raise SettingsInvalid(problems)
    return settings
