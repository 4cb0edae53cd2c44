"""`python -m localdev.sandbox`: run the sandbox tenant on its own until Ctrl-C.

Why: to walk the linking flow by hand, or to point a separately started function host at it. It
prints the URLs and the application settings to use; `--demo` also creates a tenant with an app
registration already consented and given Global Reader, so only the certificate upload remains.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from localdev.sandbox.server import Sandbox


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="Entra/Graph/admin port (0: free)")
    parser.add_argument("--keyvault-port", type=int, default=0, help="Key Vault port (0: free)")
    parser.add_argument("--ca-bundle", type=Path, help="write the CA certificate (PEM) here")
    parser.add_argument("--demo", action="store_true", help="create a ready-to-link demo tenant")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args()


def _create_demo_tenant(sandbox: Sandbox) -> None:
    tenant = sandbox.admin.create_tenant(
        "Contoso (sandbox)", domains=["contoso.onmicrosoft.com", "contoso.com"]
    )
    tid = tenant["tenantId"]
    app = sandbox.admin.create_application(tid, "Governance portal reader")
    sandbox.admin.set_permissions(tid, app["appId"], ["AccessReview.Read.All"])
    sandbox.admin.set_directory_roles(tid, app["appId"], ["Global Reader"])
    print(f"demo tenant      {tid} (contoso.onmicrosoft.com, contoso.com)")
    print(f"demo application {app['appId']} (consented, Global Reader; upload its certificate:)")
    print(
        f"  curl --cacert {sandbox.ca_bundle_path} -H 'Content-Type: application/x-pem-file' "
        f"--data-binary @certificate.pem "
        f"{sandbox.base_url}/admin/tenants/{tid}/applications/{app['appId']}/certificates"
    )


def main() -> None:
    arguments = _arguments()
    logging.basicConfig(
        level=logging.INFO if arguments.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with Sandbox(
        port=arguments.port,
        keyvault_port=arguments.keyvault_port,
        ca_bundle_path=arguments.ca_bundle,
    ) as sandbox:
        print(f"sandbox          {sandbox.base_url}  (Entra, Graph, portal issuer, /admin/)")
        print(f"Key Vault        {sandbox.keyvault_url}")
        print(f"CA bundle        {sandbox.ca_bundle_path}")
        print("application settings:")
        for name, value in sandbox.app_settings().items():
            print(f"  {name}={value}")
        if arguments.demo:
            _create_demo_tenant(sandbox)
        print("Ctrl-C stops the sandbox.", flush=True)
        stop.wait()
    print("sandbox stopped")


if __name__ == "__main__":
    main()
