"""The national clouds a sandbox tenant can live in.

Why: the app picks its login host, Graph host and token scope from the tenant's cloud, and reads
the cloud back from the tenant's OpenID metadata. One table here keeps the metadata, the token
endpoint's resource check and the Graph organization answer consistent with each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    """What Entra and Graph say about one national cloud."""

    name: str
    cloud_instance_name: str
    msgraph_host: str
    cloud_graph_host_name: str
    tenant_region_scope: str
    tenant_region_sub_scope: str | None
    initial_domain_suffix: str
    access_token_issuer_host: str

    @property
    def graph_resource(self) -> str:
        """The resource (token `aud`) of this cloud's Microsoft Graph."""
        return f"https://{self.msgraph_host}"

    def access_token_issuer(self, tenant_id: str) -> str:
        """The `iss` of a v1.0 access token issued in this cloud."""
        return f"https://{self.access_token_issuer_host}/{tenant_id}/"


CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        name="global",
        cloud_instance_name="microsoftonline.com",
        msgraph_host="graph.microsoft.com",
        cloud_graph_host_name="graph.windows.net",
        tenant_region_scope="NA",
        tenant_region_sub_scope=None,
        initial_domain_suffix="onmicrosoft.com",
        access_token_issuer_host="sts.windows.net",
    ),
    "usgov": Cloud(
        name="usgov",
        cloud_instance_name="microsoftonline.us",
        msgraph_host="graph.microsoft.us",
        cloud_graph_host_name="graph.microsoftazure.us",
        tenant_region_scope="USGov",
        tenant_region_sub_scope="DODCON",
        initial_domain_suffix="onmicrosoft.us",
        access_token_issuer_host="login.microsoftonline.us",
    ),
    "usgovdod": Cloud(
        name="usgovdod",
        cloud_instance_name="microsoftonline.us",
        msgraph_host="dod-graph.microsoft.us",
        cloud_graph_host_name="graph.microsoftazure.us",
        tenant_region_scope="USGov",
        tenant_region_sub_scope="DOD",
        initial_domain_suffix="onmicrosoft.us",
        access_token_issuer_host="login.microsoftonline.us",
    ),
    "china": Cloud(
        name="china",
        cloud_instance_name="partner.microsoftonline.cn",
        msgraph_host="microsoftgraph.chinacloudapi.cn",
        cloud_graph_host_name="graph.chinacloudapi.cn",
        tenant_region_scope="AS",
        tenant_region_sub_scope=None,
        initial_domain_suffix="partner.onmschina.cn",
        access_token_issuer_host="sts.chinacloudapi.cn",
    ),
}

GRAPH_RESOURCES: frozenset[str] = frozenset(cloud.graph_resource for cloud in CLOUDS.values())
