"""The app on the local host in a process of its own, telemetry as its environment says (the
OpenTelemetry providers can be set once per process, and the test session has its own).

Prints the host's URL, serves until its stdin closes, then stops (the SDK flushes at exit) and
prints what telemetry it ran with as JSON."""

from __future__ import annotations

import json
import os
import sys

from localdev.host import LocalHost
from shared.app import telemetry
from shared.app.bootstrap import build_context, set_context
from shared.core.settings import load_settings


def main() -> None:
    host = LocalHost()
    host.bind()
    os.environ.setdefault("OIDC_ISSUER", host.issuer_url())
    set_context(build_context(load_settings()))
    print(host.start(), flush=True)
    sys.stdin.read()
    host.stop()
    sdk = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "azure.monitor")))
    print(json.dumps({"mode": telemetry.configure(), "sdkModules": sdk}), flush=True)


if __name__ == "__main__":
    main()
