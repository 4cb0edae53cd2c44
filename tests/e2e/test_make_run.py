"""`make run` (python -m localdev): starts offline, prints its routes and the walk-through, serves
the app and the portal page, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_starts_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTH_", "KEY_VAULT", "OIDC_", "KEY_CUSTODY"))
    }
    env.update({"LOCAL_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        printed = "".join(lines)
        base = re.search(r"Functions host listening on (http://\S+)", printed)
        assert base, printed
        url = base.group(1)
        for route in ("/api/keys", "/api/accounts/{id}/verify", "/api/health", "/api/onboarding"):
            assert f"{url}{route}" in printed
        assert "health_check: timerTrigger" in printed
        assert "Generate public key & Download" in printed
        tenant = re.search(r"Demo tenant (\S+), application (\S+)", printed)
        assert tenant, printed
        assert requests.get(f"{url}/api/health", timeout=10).json()["status"] == "ok"
        # The OpenID issuer is the host's own URL, and the walk-through names the federated flow.
        issuer = re.search(r"OpenID issuer \(federated credentials\): (\S+)", printed)
        assert issuer and issuer.group(1) == f"{url}/api/oidc", printed
        assert "federated-credentials" in printed and "format=json" in printed
        document = requests.get(f"{issuer.group(1)}/.well-known/openid-configuration", timeout=10)
        assert document.json()["issuer"] == issuer.group(1)
        assert requests.get(document.json()["jwks_uri"], timeout=10).json() == {"keys": []}
        assert "<html" in requests.get(f"{url}/", timeout=10).text.lower()
        tenants = requests.get(f"{url}/sandbox/admin/tenants", timeout=10).json()["value"]
        assert [t["tenantId"] for t in tenants] == [tenant.group(1)]
        key = requests.post(
            f"{url}/api/keys",
            json={
                "tenantId": tenant.group(1),
                "applicationId": tenant.group(2),
                "displayName": "Demo",
            },
            timeout=30,
        )
        assert key.status_code == 201
        assert (tmp_path / "state" / "keys" / f"{key.json()['keyId']}.pem").exists()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
