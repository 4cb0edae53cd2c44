"""Settings: validated once, each problem named with what to set."""

from __future__ import annotations

import pytest

from shared.settings import SettingsInvalid, load_settings

ENTRA = {
    "AUTH_MODE": "entra",
    "AUTH_AUDIENCE": "api://portal, 1b2c",
    "AUTH_ISSUER": "https://login.microsoftonline.com/{tid}/v2.0",
}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsInvalid) as invalid:
        load_settings(env)
    return invalid.value.problems


def test_defaults_are_local_stores_and_entra_auth() -> None:
    settings = load_settings(ENTRA)
    assert settings.auth.mode == "entra"
    assert settings.auth.audiences == ("api://portal", "1b2c")
    assert settings.auth.owner_claim == "tid"
    assert settings.key_store_backend == "local" and settings.account_store_backend == "sqlite"
    assert settings.health_check_concurrency == 8 and settings.cert_expiry_warning_days == 30
    assert settings.health_check_schedule == "0 0 */6 * * *"
    assert settings.entra_authority_host is None and settings.graph_endpoint is None


def test_entra_mode_names_each_missing_setting() -> None:
    found = problems({})
    assert any(p.startswith("AUTH_AUDIENCE is required") for p in found)
    assert any(p.startswith("AUTH_ISSUER is required") for p in found)


def test_local_mode_is_refused_in_azure() -> None:
    found = problems({"AUTH_MODE": "local", "WEBSITE_INSTANCE_ID": "abc"})
    assert any("AUTH_MODE=local is refused in Azure" in p for p in found)
    assert any("embedded stores are refused" in p for p in found)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("AUTH_MODE", "maybe", "AUTH_MODE must be"),
        ("KEY_VAULT_URL", "http://vault", "KEY_VAULT_URL must be an https"),
        ("ENTRA_AUTHORITY_HOST", "https://login.example/path", "without a path"),
        ("GRAPH_ENDPOINT", "graph.microsoft.com", "GRAPH_ENDPOINT must be an https"),
        ("HEALTH_CHECK_CONCURRENCY", "0", "HEALTH_CHECK_CONCURRENCY must be between"),
        ("HEALTH_CHECK_CONCURRENCY", "many", "must be an integer"),
        ("CERT_EXPIRY_WARNING_DAYS", "-1", "CERT_EXPIRY_WARNING_DAYS must be between"),
        ("HEALTH_CHECK_SCHEDULE", "0 */6 * * *", "six-field NCRONTAB"),
        ("ACCOUNTS_TABLE_NAME", "bad-name", "ACCOUNTS_TABLE_NAME must be"),
        ("AUTH_JWKS_URI", "ftp://keys", "AUTH_JWKS_URI must be an https"),
    ],
)
def test_each_invalid_setting_is_named(name: str, value: str, fragment: str) -> None:
    found = problems({**ENTRA, name: value})
    assert len(found) == 1 and fragment in found[0] and name.split("_")[0] in found[0]


def test_table_storage_by_connection_string_or_identity() -> None:
    by_string = load_settings({**ENTRA, "ACCOUNTS_STORAGE": "UseDevelopmentStorage=true"})
    assert by_string.table is not None and by_string.table.connection_string
    by_identity = load_settings(
        {
            **ENTRA,
            "ACCOUNTS_STORAGE__tableServiceUri": "https://st.table.core.windows.net/",
            "ACCOUNTS_STORAGE__clientId": "cid",
        }
    )
    assert by_identity.table is not None
    assert by_identity.table.table_service_uri == "https://st.table.core.windows.net"
    assert by_identity.table.managed_identity_client_id == "cid"
    both = problems(
        {
            **ENTRA,
            "ACCOUNTS_STORAGE": "x",
            "ACCOUNTS_STORAGE__tableServiceUri": "https://st.table.core.windows.net",
        }
    )
    assert "not both" in both[0]


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"AUTH_MODE": "entra", "HEALTH_CHECK_CONCURRENCY": "0"})
    assert len(found) == 3
