"""National clouds: where a tenant signs in and where its Graph lives.

A tenant's cloud is found from its public OpenID metadata (`cloud_instance_name`,
`msgraph_host`); tokens never cross clouds, so a US Government or China tenant must be verified
against its own hosts.
"""

from __future__ import annotations

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
