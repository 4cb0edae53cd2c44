"""A worker process as the Functions host starts one on Python 3.13+, reporting what it saw.

Run as `python -I fresh_worker.py <app folder> <state folder>` from the app folder (the host
starts the worker there). The proxy worker's `DependencyManager` puts the app folder at the
*end* of `sys.path`, after the worker's and the app's packages, so an app import that only works
from the repository root, or a package name some installed distribution also uses, shows here.
Prints one JSON object: what loaded, where `shared` came from, what the import did (sockets
opened, files written), the worker's warning log records, and a GET /api/health answer.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_harness() -> Any:
    """This folder as a package of its own name: the worker library's wheel installs a
    top-level `tests` package, which wins over the app folder at the end of `sys.path`."""
    spec = importlib.util.spec_from_file_location(
        "runtime_harness", HERE / "__init__.py", submodule_search_locations=[str(HERE)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["runtime_harness"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("runtime_harness.worker")


def shadows(app_root: Path, names: list[str]) -> list[str]:
    """Every other sys.path entry that holds a module or package of one of these names."""
    found = []
    for entry in sys.path:
        if not entry or Path(entry).resolve() == app_root.resolve():
            continue
        for name in names:
            if (Path(entry) / name).exists() or (Path(entry) / f"{name}.py").exists():
                found.append(f"{entry}/{name}")
    return found


def main() -> None:
    app_root, state = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.append(str(app_root))
    opened: list[str] = []
    connect = socket.socket.connect

    def record(sock: socket.socket, address: Any) -> Any:
        opened.append(repr(address))
        return connect(sock, address)

    socket.socket.connect = record  # type: ignore[method-assign]
    harness = load_harness()
    from localdev.functions import discover
    from localdev.host import HostRequest

    worker = harness.Worker(app_root)
    worker.start()
    specs = discover(app_root)
    success = worker.protos.StatusResult.Success
    loaded = {s.name: worker.load(s).result.status == success for s in specs}
    report: dict[str, Any] = {
        "loaded": loaded,
        "modules": sorted(n for n in sys.modules if n.startswith("__app__.")),
        "plainModules": sorted(s.name for s in specs if s.name in sys.modules),
        "shared": str(Path(sys.modules["shared"].__file__ or "").resolve()),
        "shadows": shadows(app_root, ["shared", *(s.name for s in specs)]),
        "socketsAtLoad": opened[:],
        "filesAtLoad": sorted(str(p) for p in state.rglob("*")) if state.exists() else [],
    }
    request = HostRequest("GET", "http://localhost/api/health", {}, {}, {}, b"")
    data = harness.host_messages.rpc_http(worker.protos, request, worker.capabilities)
    invocation = harness.host_messages.invocation(worker.protos, "req", data)
    answer = harness.host_messages.http_answer(worker.protos, worker.invoke("health", invocation))
    report["health"] = {"status": answer.status, "body": answer.body.decode()}
    report["warnings"] = [
        f"{r.category} {r.message}" for r in worker.logs.records if r.level >= logging.WARNING
    ]
    worker.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
