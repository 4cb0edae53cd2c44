"""`make run`: the whole app locally and offline — the local function host plus the sandbox tenant.

python -m localdev              serve until Ctrl-C and print how to walk the linking flow
python -m localdev demo         serve, walk the flow (and its failures) by itself, then stop
options: --port 7071, --timers (run timer functions on their schedule), --no-sandbox,
         --key-vault (make keys inside the sandbox's Key Vault stand-in, custody vault-key;
         KEY_CUSTODY=vault-secret keeps them there as secrets instead),
         --telemetry (print every span, log record and metric the app exports to the console,
         as an operator would see them: sets M365LINK_TELEMETRY_CONSOLE=1; metrics every 10 s)
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi

from localdev.host import LocalHost, load_local_settings
from shared.app.bootstrap import build_context, set_context
from shared.core.settings import SettingsInvalid, load_settings


class _SandboxVaultCredential:
    """The token the Key Vault stand-in accepts: any bearer token (it is not Key Vault)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        expires = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
        return AccessToken("local-sandbox-vault-token", expires)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) != 0


def _trust_bundle(sandbox_ca: str) -> str:
    """The sandbox CA plus the public roots, so the sandbox is trusted and nothing else breaks."""
    fd, path = tempfile.mkstemp(prefix="localdev-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as bundle:
        bundle.write(Path(sandbox_ca).read_bytes())
        bundle.write(Path(certifi.where()).read_bytes())
    return path


def _demo_tenant(sandbox: Any) -> dict[str, str]:
    tenant = sandbox.admin.create_tenant(
        "Contoso (sandbox)", domains=["contoso.onmicrosoft.com", "contoso.com"]
    )
    app = sandbox.admin.create_application(tenant["tenantId"], "Governance portal (read-only)")
    sandbox.admin.set_permissions(tenant["tenantId"], app["appId"], ["AccessReview.Read.All"])
    sandbox.admin.set_directory_roles(tenant["tenantId"], app["appId"], ["Global Reader"])
    return {"tenantId": tenant["tenantId"], "applicationId": app["appId"]}


def _walkthrough(base: str, demo: dict[str, str] | None) -> str:
    if demo is None:
        return f"Open {base}/ for the reference portal page."
    tid, app = demo["tenantId"], demo["applicationId"]
    return f"""
Walk the linking flow
  In a browser: {base}/  (the reference portal page; its sandbox panel stands in for the Entra
  admin center). Or with curl:

  1. Generate public key & Download
     curl -s -X POST {base}/api/keys -H 'Content-Type: application/json' \\
       -d '{{"tenantId":"{tid}","applicationId":"{app}","displayName":"Contoso"}}'
     curl -s -o contoso.cer '{base}/api/keys/<keyId>?format=cer'
  2. Upload the certificate to the app registration (the sandbox stands in for Entra)
     curl -s -X POST {base}/sandbox/admin/tenants/{tid}/applications/{app}/certificates \\
       -H 'Content-Type: application/pkix-cert' --data-binary @contoso.cer
  3. Connect, then verify
     curl -s -X POST {base}/api/accounts -H 'Content-Type: application/json' \\
       -d '{{"displayName":"Contoso","tenantId":"{tid}","applicationId":"{app}",
            "organizationName":"contoso.com","keyId":"<keyId>"}}'
     curl -s -X POST {base}/api/accounts/<id>/verify
  4. See a failure: revoke consent, verify again, read the remediation
     curl -s -X PUT {base}/sandbox/admin/tenants/{tid}/applications/{app}/permissions \\
       -H 'Content-Type: application/json' -d '{{"roles":[]}}'

  Or link with a federated credential instead (nothing to download or upload, nothing expires):
     curl -s -X POST {base}/api/keys -H 'Content-Type: application/json' \\
       -d '{{"kind":"federated","tenantId":"{tid}","applicationId":"{app}",
            "displayName":"Contoso"}}'
     curl -s -o contoso.json '{base}/api/keys/<keyId>?format=json'
     curl -s -X POST {base}/sandbox/admin/tenants/{tid}/applications/{app}/federated-credentials \\
       -H 'Content-Type: application/json' --data-binary @contoso.json
     then Connect and verify as in step 3; the sandbox fetches this app's issuer documents
     ({base}/api/oidc/.well-known/openid-configuration and /api/oidc/jwks) as Entra would.

  Or let it walk itself: python -m localdev demo
Demo tenant {tid}, application {app} (consent and Global Reader granted, no certificate yet).
Press Ctrl-C to stop."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "demo"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--timers", action="store_true", help="run timers on their schedule")
    parser.add_argument("--no-sandbox", action="store_true", help="use the settings as they are")
    parser.add_argument("--key-vault", action="store_true", help="keys in the Key Vault stand-in")
    parser.add_argument(
        "--telemetry", action="store_true", help="print spans, logs and metrics to the console"
    )
    args = parser.parse_args(argv)
    if args.telemetry:
        os.environ["M365LINK_TELEMETRY_CONSOLE"] = "1"
        os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "10000")

    load_local_settings()
    os.environ.setdefault("AUTH_MODE", "local")
    os.environ.setdefault("LOCAL_STATE_DIR", ".local")
    os.environ.setdefault("HEALTH_CHECK_SCHEDULE", "0 */10 * * * *")

    sandbox = None
    demo = None
    if not args.no_sandbox:
        from localdev.sandbox import Sandbox

        sandbox = Sandbox().start()
        os.environ["ENTRA_AUTHORITY_HOST"] = sandbox.base_url
        os.environ["GRAPH_ENDPOINT"] = sandbox.base_url
        os.environ["REQUESTS_CA_BUNDLE"] = _trust_bundle(sandbox.ca_bundle_path)
        if args.key_vault:
            os.environ["KEY_VAULT_URL"] = sandbox.keyvault_url
        demo = _demo_tenant(sandbox)
    host = LocalHost(
        sandbox_url=sandbox.base_url if sandbox else None,
        sandbox_ca=sandbox.ca_bundle_path if sandbox else None,
    )
    port = args.port if _port_free(args.host, args.port) else 0
    # The port first, so the issuer is the URL this host answers on: the sandbox tenant fetches
    # the issuer's documents from it over loopback HTTP, as Entra does from the public host.
    host.bind(args.host, port)
    os.environ.setdefault("OIDC_ISSUER", host.issuer_url())
    try:
        settings = load_settings()
    except SettingsInvalid as invalid:
        print("The app cannot start; fix these settings (environment or local.settings.json):")
        for problem in invalid.problems:
            print(f"  - {problem}")
        host.stop()
        if sandbox:
            sandbox.stop()
        return 2
    credential = _SandboxVaultCredential() if args.key_vault and sandbox else None
    set_context(build_context(settings, vault_credential=credential))  # type: ignore[arg-type]
    host.start()
    if port != args.port:
        print(f"(port {args.port} is busy; using a free one)")
    print(host.describe())
    print(
        f"\nStores: keys in {settings.key_store_backend} (custody {settings.key_custody}), "
        f"accounts in {settings.account_store_backend} ({settings.local_state_dir})"
    )
    print(f"OpenID issuer (federated credentials): {settings.oidc_issuer}")
    if sandbox:
        print(f"Sandbox tenant: {sandbox.base_url} (Key Vault stand-in {sandbox.keyvault_url})")
    if args.timers:
        host.start_timers()
        print("Timers run on their schedules.")
    if os.environ.get("M365LINK_TELEMETRY_CONSOLE") == "1":
        print("Telemetry: spans, log records and metrics are printed here as they are exported.")

    try:
        if args.command == "demo":
            from localdev.demo import walk

            return walk(host.base_url, sandbox, demo)
        print(_walkthrough(host.base_url, demo))
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        print("\nStopping.")
        return 0
    finally:
        host.stop()
        if sandbox:
            sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
