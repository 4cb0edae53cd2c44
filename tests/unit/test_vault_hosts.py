"""Which hosts are Key Vaults of a cloud, and which are this machine (shared/core/clouds.py)."""

from __future__ import annotations

import pytest

from shared.core.clouds import KEY_VAULT_HOST_SUFFIXES, is_key_vault_host, is_loopback_host


@pytest.mark.parametrize("suffix", KEY_VAULT_HOST_SUFFIXES)
def test_one_name_under_each_suffix_is_a_vault(suffix: str) -> None:
    assert is_key_vault_host(f"kv-m365link.{suffix}")
    assert is_key_vault_host(f"KV-M365LINK.{suffix.upper()}")
    assert not is_key_vault_host(suffix)
    assert not is_key_vault_host(f"a.b.{suffix}")
    assert not is_key_vault_host(f"kv.{suffix}.evil.example")
    assert not is_key_vault_host(f"-kv.{suffix}")


@pytest.mark.parametrize(
    "host", ["kv.privatelink.vaultcore.azure.net", "st.table.core.windows.net", "", "evil.example"]
)
def test_other_hosts_are_not_vaults(host: str) -> None:
    assert not is_key_vault_host(host)


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.1", "::1", "[::1]"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "0.0.0.0",  # noqa: S104 - a host to classify, not to bind
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "kv.vault.azure.net",
        "",
    ],
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)
