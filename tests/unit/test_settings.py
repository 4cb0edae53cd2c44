"""Settings: validated once, each problem named with what to set."""

from __future__ import annotations

import pytest

from shared.core.settings import SettingsInvalid, load_settings

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
    assert settings.health_check_schedule == "0 */10 * * * *"
    assert settings.health_check_interval_hours == 6 and settings.key_retirement_days == 7
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
        ("HEALTH_CHECK_INTERVAL_HOURS", "169", "HEALTH_CHECK_INTERVAL_HOURS must be between"),
        ("HEALTH_CHECK_INTERVAL_HOURS", "-1", "HEALTH_CHECK_INTERVAL_HOURS must be between"),
        ("KEY_RETIREMENT_DAYS", "91", "KEY_RETIREMENT_DAYS must be between"),
        ("KEY_RETIREMENT_DAYS", "-1", "KEY_RETIREMENT_DAYS must be between"),
        ("HEALTH_CHECK_SCHEDULE", "0 */6 * * *", "six-field NCRONTAB"),
        ("ACCOUNTS_TABLE_NAME", "bad-name", "ACCOUNTS_TABLE_NAME must be"),
        ("AUTH_JWKS_URI", "ftp://keys", "AUTH_JWKS_URI must be an https"),
    ],
)
def test_each_invalid_setting_is_named(name: str, value: str, fragment: str) -> None:
    found = problems({**ENTRA, name: value})
    assert len(found) == 1 and fragment in found[0] and name.split("_")[0] in found[0]


def test_interval_and_retirement_take_their_whole_ranges() -> None:
    for hours in ("0", "168"):
        assert load_settings(
            {**ENTRA, "HEALTH_CHECK_INTERVAL_HOURS": hours}
        ).health_check_interval_hours == int(hours)
    for days in ("0", "90"):
        assert load_settings({**ENTRA, "KEY_RETIREMENT_DAYS": days}).key_retirement_days == int(
            days
        )


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


SECRET = "S3cr3tValue-9f2c"  # looks like nothing any rule could print by accident


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_MODE", SECRET),
        ("AUTH_JWKS_URI", f"http://{SECRET}.example/keys"),
        ("KEY_VAULT_URL", f"http://{SECRET}.vault.azure.net"),
        ("ENTRA_AUTHORITY_HOST", f"https://login.example/{SECRET}"),
        ("GRAPH_ENDPOINT", SECRET),
        ("HEALTH_CHECK_CONCURRENCY", SECRET),
        ("HEALTH_CHECK_CONCURRENCY", "987654321"),
        ("VERIFY_TIMEOUT_SECONDS", "987654321"),
        ("HEALTH_CHECK_SCHEDULE", SECRET),
        ("ACCOUNTS_TABLE_NAME", f"{SECRET}!"),
        ("ACCOUNTS_STORAGE__tableServiceUri", f"http://{SECRET}.table.core.windows.net"),
    ],
)
def test_no_message_carries_the_settings_value(name: str, value: str) -> None:
    with pytest.raises(SettingsInvalid) as invalid:
        load_settings({**ENTRA, name: value})
    assert name in invalid.value.detail
    assert value not in invalid.value.detail and SECRET not in invalid.value.detail
    assert "987654321" not in invalid.value.detail


AZURE = {
    **ENTRA,
    "WEBSITE_INSTANCE_ID": "0123abcd",
    "WEBSITE_HOSTNAME": "func-m365link.azurewebsites.net",  # App Service always sets both
    "ACCOUNTS_STORAGE__tableServiceUri": "https://st.table.core.windows.net",
    "KEY_VAULT_URL": "https://kv-m365link.vault.azure.net/",
}


@pytest.mark.parametrize(
    "url",
    [
        "https://kv-m365link.vault.azure.net/",
        "https://KV-M365LINK.VAULT.AZURE.NET",
        "https://kv.vault.usgovcloudapi.net",
        "https://kv.vault.azure.cn",
        "https://kv.vault.microsoftazure.de",
        "https://hsm1.managedhsm.azure.net",
        "https://hsm1.managedhsm.usgovcloudapi.net",
        "https://hsm1.managedhsm.azure.cn",
        "https://kv.vault.azure.net:443",
    ],
)
def test_in_azure_a_key_vault_host_of_a_cloud_is_accepted(url: str) -> None:
    assert load_settings({**AZURE, "KEY_VAULT_URL": url}).key_vault_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "https://storageacct.blob.core.windows.net",  # its challenge would name storage
        "https://evil.example",
        "https://kv.vault.azure.net.evil.example",
        "https://evilvault.azure.net",
        "https://vault.azure.net",
        "https://a.b.vault.azure.net",
        "https://kv.privatelink.vaultcore.azure.net",  # the SDK's check could never pass
        "https://127.0.0.1:8443",
        "https://localhost",
        "https://kv.vault.azure.net:8443",
        "https://user@kv.vault.azure.net",
    ],
)
def test_in_azure_any_other_key_vault_host_is_refused(url: str) -> None:
    found = problems({**AZURE, "KEY_VAULT_URL": url})
    assert len(found) == 1 and found[0].startswith("KEY_VAULT_URL must be a Key Vault in Azure")
    assert url not in found[0]


def test_outside_azure_a_loopback_stand_in_is_allowed() -> None:
    url = "https://127.0.0.1:8443"
    assert load_settings({**ENTRA, "KEY_VAULT_URL": url}).key_vault_url == url


@pytest.mark.parametrize(
    "connection",
    [
        "UseDevelopmentStorage=true",
        "usedevelopmentstorage=TRUE;DevelopmentStorageProxyUri=http://127.0.0.1",
        f"DefaultEndpointsProtocol=http;AccountName=st;AccountKey={SECRET}==",
        f"DefaultEndpointsProtocol=https;AccountName=st;AccountKey={SECRET}==;"
        "TableEndpoint=http://st.table.core.windows.net/",
        f"AccountName=st;AccountKey={SECRET}==;TableEndpoint=http://10.0.0.4:10002/st",
    ],
)
def test_in_azure_a_plain_http_or_emulator_connection_string_is_refused(connection: str) -> None:
    env = {k: v for k, v in AZURE.items() if not k.startswith("ACCOUNTS_STORAGE")}
    found = problems({**env, "ACCOUNTS_STORAGE": connection})
    assert len(found) == 1 and found[0].startswith("ACCOUNTS_STORAGE is refused in Azure")
    assert SECRET not in found[0] and "st.table" not in found[0]


def test_in_azure_an_https_connection_string_is_accepted_and_http_outside() -> None:
    env = {k: v for k, v in AZURE.items() if not k.startswith("ACCOUNTS_STORAGE")}
    https = (
        f"DefaultEndpointsProtocol=https;AccountName=st;AccountKey={SECRET}==;"
        "EndpointSuffix=core.windows.net"
    )
    assert load_settings({**env, "ACCOUNTS_STORAGE": https}).table is not None
    azurite = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1"
    )
    assert load_settings({**ENTRA, "ACCOUNTS_STORAGE": azurite}).table is not None


# --- the OpenID issuer (API.md, Federated credentials > Settings) ------------------------------
def test_the_issuer_defaults_to_the_local_host_outside_azure_and_rotates_every_180_days() -> None:
    settings = load_settings(ENTRA)
    assert settings.oidc_issuer == "http://127.0.0.1:7071/api/oidc"
    assert settings.oidc_key_rotation_days == 180
    # WEBSITE_HOSTNAME alone (no WEBSITE_INSTANCE_ID) is not Azure: the local default holds.
    local = load_settings({**ENTRA, "WEBSITE_HOSTNAME": "app.azurewebsites.net"})
    assert local.oidc_issuer == "http://127.0.0.1:7071/api/oidc"


def test_in_azure_the_issuer_defaults_to_the_apps_own_https_host() -> None:
    settings = load_settings({**AZURE, "WEBSITE_HOSTNAME": "func-contoso.azurewebsites.net"})
    assert settings.oidc_issuer == "https://func-contoso.azurewebsites.net/api/oidc"


def test_in_azure_without_a_host_name_or_oidc_issuer_no_issuer_is_published() -> None:
    # The platform always sets WEBSITE_HOSTNAME; without it the app still starts, and only
    # federated credentials are refused (there is no issuer to name).
    env = {k: v for k, v in AZURE.items() if k != "WEBSITE_HOSTNAME"}
    assert load_settings(env).oidc_issuer == ""
    pinned = "https://id.contoso.com/api/oidc"
    assert load_settings({**env, "OIDC_ISSUER": pinned}).oidc_issuer == pinned


@pytest.mark.parametrize(
    "issuer",
    [
        "https://id.contoso.com/api/oidc",
        "https://id.contoso.com",
        "https://front.example:8443/Tenant-Links/OIDC",  # kept exactly: Entra matches case
    ],
)
def test_an_https_issuer_is_kept_exactly_in_azure_and_outside(issuer: str) -> None:
    env = {**AZURE, "OIDC_ISSUER": issuer}
    assert load_settings(env).oidc_issuer == issuer
    assert load_settings({**ENTRA, "OIDC_ISSUER": issuer}).oidc_issuer == issuer


def test_http_issuer_is_refused_in_azure_and_allowed_locally() -> None:
    issuer = "http://func-m365link.azurewebsites.net/api/oidc"
    found = problems({**AZURE, "OIDC_ISSUER": issuer})
    assert len(found) == 1 and found[0].startswith("OIDC_ISSUER must be an https:// URL in Azure")
    assert issuer not in found[0]
    local = "http://127.0.0.1:5000/api/oidc"
    assert load_settings({**ENTRA, "OIDC_ISSUER": local}).oidc_issuer == local


@pytest.mark.parametrize(
    "issuer",
    [
        "https://id.contoso.com/api/oidc/",  # Entra would compare it with the trailing slash
        "https://id.contoso.com/",
        "https://id.contoso.com/api/oidc?x=1",
        "https://id.contoso.com/api/oidc#top",
        "https://user@id.contoso.com/api/oidc",
    ],
)
def test_an_issuer_with_a_trailing_slash_query_fragment_or_user_is_refused(issuer: str) -> None:
    for env in ({**ENTRA}, AZURE):
        found = problems({**env, "OIDC_ISSUER": issuer})
        assert len(found) == 1 and found[0].startswith("OIDC_ISSUER must not end with '/'")
        assert issuer not in found[0]


@pytest.mark.parametrize("issuer", ["ftp://id.contoso.com/oidc", "id.contoso.com/oidc", "https://"])
def test_an_issuer_that_is_no_web_url_is_refused(issuer: str) -> None:
    found = problems({**ENTRA, "OIDC_ISSUER": issuer})
    assert len(found) == 1 and found[0].startswith("OIDC_ISSUER must be an https:// URL")


@pytest.mark.parametrize("days", ["30", "365", "730"])
def test_issuer_key_rotation_takes_its_whole_range(days: str) -> None:
    settings = load_settings({**ENTRA, "OIDC_KEY_ROTATION_DAYS": days})
    assert settings.oidc_key_rotation_days == int(days)


@pytest.mark.parametrize("days", ["29", "731", "0", "-1", "ninety", "90.5"])
def test_issuer_key_rotation_outside_30_to_730_is_refused(days: str) -> None:
    found = problems({**ENTRA, "OIDC_KEY_ROTATION_DAYS": days})
    assert len(found) == 1 and found[0].startswith("OIDC_KEY_ROTATION_DAYS must be")
    assert "30" in found[0] and "730" in found[0] and days not in found[0].split()
