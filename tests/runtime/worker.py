"""Microsoft's Python worker library, `azure-functions-runtime-v1`, driven as in Azure.

On Python 3.13+ the Functions host starts Microsoft's proxy worker, which passes every gRPC
message of the host to this library's `handle_event` coroutines (`worker_init_request`,
`functions_metadata_request`, `function_load_request`, `invocation_request`) together with the
`FunctionRpc` protobuf module, on one event loop, after starting the library's thread pool.
Here the messages come from `host_messages` instead of a gRPC stream; everything from the
message on (loading the function folders, binding the request, running the function on the
library's thread pool, encoding the answer) is the library's own code.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import sys
import threading
import types
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure_functions_runtime_v1 as library
from azure_functions_runtime_v1 import handle_event

from localdev.functions import FunctionSpec

from . import host_messages

CALL_TIMEOUT = 600.0  # host.json functionTimeout: 10 minutes


def load_protos() -> types.ModuleType:
    """The `FunctionRpc` messages generated from the host's protobuf files, as the library's
    wheel ships them (`tests/protos`), loaded under a name of their own: the wheel's top-level
    `tests` package would otherwise collide with this project's. The gRPC stubs are left out
    (no channel here), so only the message modules are imported."""
    dist = importlib.metadata.distribution("azure-functions-runtime-v1")
    root = Path(str(dist.locate_file("tests/protos")))
    package = types.ModuleType("_functionrpc")
    package.__path__ = [str(root)]
    sys.modules["_functionrpc"] = package
    namespace = types.ModuleType("functionrpc")
    for name in ("FunctionRpc_pb2", "shared.NullableTypes_pb2"):
        module = importlib.import_module(f"_functionrpc.{name}")
        for attr, value in vars(module).items():
            if not attr.startswith("_"):
                setattr(namespace, attr, value)
    return namespace


@dataclass
class WorkerRequest:
    """What the proxy worker hands the library: the message's name, the host's
    `StreamingMessage`, and (on init) the protobuf module and the host's address."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RpcLogRecord:
    level: int
    category: str
    message: str
    invocation_id: str | None


class RpcLogHandler(logging.Handler):
    """What the proxy worker attaches to the root logger once its gRPC channel is up: every
    record becomes an `RpcLog` to the host, with the invocation it belongs to (the library's
    context variable, set on the thread pool thread that runs the function)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)  # the worker's root level unless debug logging
        self.records: list[RpcLogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        entry = RpcLogRecord(
            record.levelno, record.name, self.format(record), library.invocation_id_cv.get()
        )
        with self._lock:
            self.records.append(entry)

    def of(self, invocation_id: str) -> list[RpcLogRecord]:
        with self._lock:
            return [r for r in self.records if r.invocation_id == invocation_id]


class Worker:
    """One worker process's library state: initialised once, each function loaded once, then
    invoked by id from any thread (the host's requests arrive concurrently)."""

    def __init__(self, app_root: Path) -> None:
        self.app_root = app_root
        self.protos = load_protos()
        self.capabilities: dict[str, str] = {}
        self.function_ids: dict[str, str] = {}
        self.invocations = 0
        self.logs = RpcLogHandler()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="worker-event-loop", daemon=True
        )
        self._lock = threading.Lock()

    # --- the host's messages ----------------------------------------------------------------
    def start(self) -> Any:
        self._thread.start()
        logging.getLogger().addHandler(self.logs)
        library.start_threadpool_executor()  # the proxy worker does this before the init request
        message = host_messages.worker_init(self.protos, self.app_root)
        response = self._send(
            handle_event.worker_init_request,
            WorkerRequest("WorkerInitRequest", message, {"protos": self.protos, "host": "local"}),
        )
        self.capabilities = dict(response.capabilities)
        return response

    def metadata(self) -> Any:
        message = host_messages.functions_metadata(self.protos, self.app_root)
        return self._send(
            handle_event.functions_metadata_request, WorkerRequest("WorkerMetadataRequest", message)
        )

    def load(self, spec: FunctionSpec) -> Any:
        message = host_messages.function_load(self.protos, spec)
        response = self._send(
            handle_event.function_load_request, WorkerRequest("FunctionLoadRequest", message)
        )
        if response.result.status == self.protos.StatusResult.Success:
            self.function_ids[spec.name] = message.function_load_request.function_id
        return response

    def invoke(self, name: str, invocation: Any) -> Any:
        """Send one InvocationRequest (built by `host_messages`) for the function `name`."""
        invocation.invocation_request.function_id = self.function_ids[name]
        with self._lock:
            self.invocations += 1
        return self._send(
            handle_event.invocation_request, WorkerRequest("FunctionInvocationRequest", invocation)
        )

    def stop(self) -> None:
        logging.getLogger().removeHandler(self.logs)
        library.stop_threadpool_executor()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _send(self, handler: Any, request: WorkerRequest) -> Any:
        coroutine: Coroutine[Any, Any, Any] = handler(request)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT)
