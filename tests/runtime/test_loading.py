"""The app as Microsoft's worker library loads it: init, metadata, one load per function.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from localdev.functions import APP_ROOT, discover
from tests.runtime.worker import Worker

FRESH_WORKER = Path(__file__).resolve().parent / "fresh_worker.py"


def test_the_worker_announces_the_capabilities_the_host_converts_for(worker: Worker) -> None:
    # ToRpcHttp reads these: bodies as bytes and alone (no rawBody copy), no HTTP request in the
    # trigger metadata; the host never proxies HTTP to this worker.
    for capability in ("RawHttpBodyBytes", "RpcHttpBodyOnly", "RpcHttpTriggerMetadataRemoved"):
        assert worker.capabilities.get(capability) == "true", capability
    assert "HttpUri" not in worker.capabilities
    assert "UseNullableValueDictionaryForHttp" not in worker.capabilities


def test_the_worker_leaves_indexing_to_function_json(worker: Worker) -> None:
    response = worker.metadata()
    assert response.result.status == worker.protos.StatusResult.Success
    assert response.use_default_metadata_indexing is True  # the host reads each function.json


def test_every_function_folder_is_loaded_under_the_workers_namespace(worker: Worker) -> None:
    assert set(worker.function_ids) == {spec.name for spec in discover(APP_ROOT)}
    for name in worker.function_ids:
        module = sys.modules[f"__app__.{name}"]
        assert Path(module.__file__ or "") == APP_ROOT / name / "__init__.py"
        assert name not in sys.modules  # loaded only as the worker loads it, never by our host


def run_fresh_worker(tmp_path: Path, **settings: str) -> dict[str, Any]:
    state = tmp_path / "state"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AzureWebJobsScriptRoot": str(APP_ROOT),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "LOCAL_STATE_DIR": str(state),
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        **settings,
    }
    result = subprocess.run(
        [sys.executable, "-I", str(FRESH_WORKER), str(APP_ROOT), str(state)],
        cwd=APP_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_fresh_worker_loads_every_function_with_the_app_folder_last(tmp_path: Path) -> None:
    report = run_fresh_worker(tmp_path, AUTH_MODE="local")
    names = {spec.name for spec in discover(APP_ROOT)}
    assert report["loaded"] == dict.fromkeys(names, True)
    assert report["modules"] == sorted(f"__app__.{n}" for n in names)
    assert report["plainModules"] == []
    # `shared` comes from the app even though the app folder is last on sys.path, and no
    # installed distribution holds a package of the same name as the app's.
    assert report["shared"] == str(APP_ROOT / "shared" / "__init__.py")
    assert report["shadows"] == []
    # Loading a function does no I/O: no connection opened, no store created.
    assert report["socketsAtLoad"] == []
    assert report["filesAtLoad"] == []
    assert report["warnings"] == []
    assert report["health"]["status"] == 200
    assert json.loads(report["health"]["body"])["status"] == "ok"


def test_settings_refused_in_azure_are_logged_through_the_worker_at_load(tmp_path: Path) -> None:
    report = run_fresh_worker(tmp_path, AUTH_MODE="local", WEBSITE_INSTANCE_ID="0123456789abcdef")
    assert all(report["loaded"].values())  # refused settings never fail a load
    refusals = [w for w in report["warnings"] if "AUTH_MODE" in w]
    assert refusals and all("0123456789abcdef" not in w for w in report["warnings"])
    assert report["health"]["status"] == 500
    problem = json.loads(report["health"]["body"])
    assert "AUTH_MODE" in problem["detail"] and "0123456789abcdef" not in report["health"]["body"]
