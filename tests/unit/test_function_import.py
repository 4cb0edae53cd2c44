"""Each function module checks the settings when the host imports it, not at the first request.

Run in a fresh interpreter per function (as the Functions worker loads them), with Azure's
`WEBSITE_INSTANCE_ID` set and `AUTH_MODE=local`: the refusal is logged at import, before any
request, and every route then answers the 500 problem naming the setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from localdev.functions import APP_ROOT

PROBE = """
import json, logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
import {module}
print("imported", file=sys.stderr, flush=True)
if "{module}" == "health_check":
    sys.exit(0)
import azure.functions as func
req = func.HttpRequest(method="{method}", url="http://localhost/api/x", headers={{}}, body=b"",
                       route_params={{}})
response = {module}.main(req)
print(json.dumps({{"status": response.status_code, "body": response.get_body().decode()}}))
"""


@pytest.mark.parametrize(
    ("module", "method"),
    [
        ("generate_key", "POST"),
        ("link_account", "GET"),
        ("verify_account", "POST"),
        ("onboarding", "GET"),
        ("health", "GET"),
        ("health_check", ""),
    ],
)
def test_auth_mode_local_in_azure_is_refused_at_import(
    module: str, method: str, tmp_path: object
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "KEY_", "ACCOUNTS_"))}
    env.update(
        WEBSITE_INSTANCE_ID="0123456789abcdef",
        AUTH_MODE="local",
        LOCAL_STATE_DIR=str(tmp_path),
        PYTHONPATH=str(APP_ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, method=method)],
        cwd=APP_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    before_import_done = result.stderr.split("imported")[0]
    assert "AUTH_MODE" in before_import_done, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if module != "health_check":
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer["status"] >= 500
        assert "AUTH_MODE" in answer["body"]
        assert "0123456789abcdef" not in answer["body"]  # never a setting's value
