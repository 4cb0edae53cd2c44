"""KEY_CUSTODY and KEY_VAULT_HSM (API.md "Key custody" and "Settings for storage")."""

from __future__ import annotations

import pytest

from shared.core.settings import SettingsInvalid, load_settings

VAULT = "https://contoso.vault.azure.net"
LOCAL = {"AUTH_MODE": "local"}


def test_a_vault_defaults_to_keys_made_inside_it() -> None:
    settings = load_settings({**LOCAL, "KEY_VAULT_URL": VAULT})
    assert settings.key_custody == "vault-key" and settings.key_vault_hsm is False
    # Keys made before the vault was set (local files) stay reachable outside Azure.
    assert settings.custodies == ("vault-key", "vault-secret", "local")


def test_no_vault_means_local_custody() -> None:
    settings = load_settings(LOCAL)
    assert settings.key_custody == "local" and settings.custodies == ("local",)


@pytest.mark.parametrize("custody", ["vault-key", "VAULT-SECRET", " vault-secret "])
def test_custody_is_read_in_any_case(custody: str) -> None:
    settings = load_settings({**LOCAL, "KEY_VAULT_URL": VAULT, "KEY_CUSTODY": custody})
    assert settings.key_custody == custody.strip().lower()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KEY_VAULT_URL": VAULT, "KEY_CUSTODY": "bogus-custody"}, "KEY_CUSTODY"),
        ({"KEY_VAULT_URL": VAULT, "KEY_CUSTODY": "local"}, "KEY_CUSTODY"),
        ({"KEY_CUSTODY": "vault-secret"}, "KEY_VAULT_URL"),
        ({"KEY_VAULT_URL": VAULT, "KEY_VAULT_HSM": "yes-please"}, "KEY_VAULT_HSM"),
    ],
)
def test_a_custody_that_cannot_work_is_refused_naming_the_setting(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsInvalid) as refused:
        load_settings({**LOCAL, **env})
    said = " ".join(refused.value.problems)
    assert named in said
    for value in ("bogus-custody", "yes-please", VAULT):
        assert value not in said  # never a setting's value


def test_hsm_keys_are_a_setting() -> None:
    settings = load_settings({**LOCAL, "KEY_VAULT_URL": VAULT, "KEY_VAULT_HSM": "true"})
    assert settings.key_vault_hsm is True


def test_in_azure_no_local_keys_are_reachable() -> None:
    env = {
        "WEBSITE_INSTANCE_ID": "x",
        "AUTH_MODE": "entra",
        "AUTH_AUDIENCE": "api://portal",
        "AUTH_ISSUER": "https://login.microsoftonline.com/{tid}/v2.0",
        "KEY_VAULT_URL": VAULT,
        "ACCOUNTS_STORAGE__tableServiceUri": "https://acct.table.core.windows.net",
    }
    assert load_settings(env).custodies == ("vault-key", "vault-secret")
