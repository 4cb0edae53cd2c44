"""National clouds: where a tenant signs in and where its Graph lives.

A tenant's cloud is found from its public OpenID metadata (`cloud_instance_name`,
`msgraph_host`); tokens never cross clouds, so a US Government or China tenant must be verified
against its own hosts. Key Vault's hosts per cloud are here too, so settings and the key store
agree on what a real vault is.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cloud:
    name: str
    login_host: str
    graph_host: str

    @property
    def graph_resource(self) -> str:
        return f"https://{self.graph_host}"


CLOUDS: dict[str, Cloud] = {
    "global": Cloud("global", "login.microsoftonline.com", "graph.microsoft.com"),
    "usgov": Cloud("usgov", "login.microsoftonline.us", "graph.microsoft.us"),
    "usgovdod": Cloud("usgovdod", "login.microsoftonline.us", "dod-graph.microsoft.us"),
    "china": Cloud("china", "login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"),
}
# Tenants of every cloud answer OpenID metadata on the global host, which names their cloud.
DISCOVERY = CLOUDS["global"]


def cloud_from_metadata(document: dict[str, Any]) -> Cloud:
    """The cloud a tenant's OpenID metadata names; global when it names none."""
    graph_host = str(document.get("msgraph_host") or "").lower()
    instance = str(document.get("cloud_instance_name") or "").lower()
    for cloud in CLOUDS.values():
        if graph_host == cloud.graph_host:
            return cloud
    if instance.endswith("microsoftonline.us"):
        sub_scope = str(document.get("tenant_region_sub_scope") or "").upper()
        return CLOUDS["usgovdod" if sub_scope == "DOD" else "usgov"]
    if instance.endswith(".cn"):
        return CLOUDS["china"]
    return CLOUDS["global"]


# Key Vault and Managed HSM hosts of each cloud: a vault is always `<name>.<suffix>`. With a
# private endpoint the app still uses this name (Azure DNS answers it with a CNAME to
# `<name>.privatelink.vaultcore.azure.net` and the endpoint's IP), and the SDK's challenge check
# compares the challenge's resource (`vault.azure.net`) with the URL's host, so a `privatelink`
# host in KEY_VAULT_URL could never pass that check: it is not listed.
KEY_VAULT_HOST_SUFFIXES: tuple[str, ...] = (
    "vault.azure.net",
    "vault.usgovcloudapi.net",
    "vault.azure.cn",
    "vault.microsoftazure.de",
    "managedhsm.azure.net",
    "managedhsm.usgovcloudapi.net",
    "managedhsm.azure.cn",
)
_VAULT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_key_vault_host(host: str) -> bool:
    """`host` is one vault or managed HSM of a cloud: one name label, then a listed suffix."""
    name, _, suffix = host.lower().partition(".")
    return suffix in KEY_VAULT_HOST_SUFFIXES and _VAULT_NAME.fullmatch(name) is not None


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1): a stand-in on this machine."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
