"""The Functions host's side of the conversation, as `Azure/azure-functions-host` builds it.

Each builder names the host code it follows:
- `GrpcWorkerChannel.GetWorkerInitRequest` / `SendWorkerInitRequest`: the init request and the
  capabilities the host announces;
- `HostFunctionMetadataProvider.ParseFunctionMetadata` + `DeterminePrimaryScriptFile` and
  `GrpcWorkerChannel.GetFunctionLoadRequest` + `BindingMetadata.ToBindingInfo`: one
  `RpcFunctionMetadata` per function.json;
- `GrpcMessageConversionExtensions.ToRpcHttp` (with the capabilities the worker answered) and
  `ScriptInvocationContextExtensions.ToRpcInvocationRequest`: an HTTP invocation;
- `ToRpcDefault` of the timer's `TimerInfo`: a timer invocation;
- `GrpcMessageExtensionUtilities.ConvertFromHttpMessageToExpando`, `HttpBinding` and
  `RawScriptResult`: the worker's `RpcHttp` answer written back to the client.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from localdev.functions import FunctionSpec
from localdev.host import HostAnswer, HostRequest

HOST_VERSION = "4.1040.300.0"  # any 4.x; the library does not read it
# Sent by every host (`MultiStream`); `FunctionDataCache` and `V2Compatable` only when enabled.
HOST_CAPABILITIES = {"MultiStream": "10"}


def worker_init(protos: Any, app_root: Path) -> Any:
    request = protos.WorkerInitRequest(
        host_version=HOST_VERSION,
        capabilities=HOST_CAPABILITIES,
        worker_directory=str(app_root),  # the worker's own folder in Azure; unread by the library
        function_app_directory=str(app_root),
    )
    return protos.StreamingMessage(request_id=str(uuid.uuid4()), worker_init_request=request)


def functions_metadata(protos: Any, app_root: Path) -> Any:
    request = protos.FunctionsMetadataRequest(function_app_directory=str(app_root))
    return protos.StreamingMessage(request_id=str(uuid.uuid4()), functions_metadata_request=request)


def function_metadata(protos: Any, spec: FunctionSpec) -> Any:
    """`RpcFunctionMetadata` as the host reads function.json: the folder's name and full path,
    the script file's full path (`scriptFile`, else the folder's `__init__.py`), `entryPoint` as
    written ("" when absent), and each binding's type and direction (and dataType if set)."""
    config = json.loads((spec.folder / "function.json").read_text())
    script = config.get("scriptFile") or "__init__.py"
    metadata = protos.RpcFunctionMetadata(
        name=spec.folder.name,
        directory=str(spec.folder.resolve()),
        script_file=str((spec.folder / script).resolve()),
        entry_point=config.get("entryPoint") or "",
        is_proxy=False,
    )
    directions = {"in": 0, "out": 1, "inout": 2}
    data_types = {"string": 1, "binary": 2, "stream": 3}
    for binding in config["bindings"]:
        info = protos.BindingInfo(
            type=binding["type"], direction=directions[str(binding["direction"]).lower()]
        )
        if "dataType" in binding:
            info.data_type = data_types[str(binding["dataType"]).lower()]
        metadata.bindings[binding["name"]].CopyFrom(info)
    return metadata


def function_load(protos: Any, spec: FunctionSpec) -> Any:
    request = protos.FunctionLoadRequest(
        function_id=str(uuid.uuid4()), metadata=function_metadata(protos, spec)
    )
    return protos.StreamingMessage(request_id=str(uuid.uuid4()), function_load_request=request)


def rpc_http(protos: Any, request: HostRequest, capabilities: dict[str, str]) -> Any:
    """`ToRpcHttp` for a worker with the Python library's capabilities (no HTTP proxying, no
    nullable dictionaries, body only: `PopulateBody`): header names lower-cased, the query as the
    host's query collection gives it (`HostRequest.query`, empty values already dropped), the
    route values, and a body only when there is one, as bytes when `RawHttpBodyBytes` was
    announced (or for octet-stream and multipart), else as a string."""
    for unsupported in ("HttpUri", "UseNullableValueDictionaryForHttp"):
        assert unsupported not in capabilities, unsupported
    assert "RpcHttpBodyOnly" in capabilities  # else PopulateBodyAndRawBody, not reproduced here
    http = protos.RpcHttp(method=request.method, url=request.url)
    for name, value in request.headers.items():
        http.headers[name.lower()] = value
    http.query.update(request.query)
    http.params.update(request.route_params)
    if request.body:
        content_type = request.headers.get("Content-Type", "").lower()
        binary = content_type.startswith(("application/octet-stream", "multipart/"))
        if "RawHttpBodyBytes" in capabilities or binary:
            http.body.CopyFrom(protos.TypedData(bytes=request.body))
        else:
            http.body.CopyFrom(protos.TypedData(string=request.body.decode("utf-8", "replace")))
    return protos.TypedData(http=http)


def invocation(
    protos: Any, binding: str, data: Any, trigger_metadata: dict[str, str] | None = None
) -> Any:
    """One `InvocationRequest` with the trigger's data under its binding name. The HTTP request
    itself is left out of the trigger metadata (`RpcHttpTriggerMetadataRemoved`); route values
    are binding data the host sends as strings."""
    request = protos.InvocationRequest(invocation_id=str(uuid.uuid4()))
    request.input_data.append(protos.ParameterBinding(name=binding, data=data))
    for key, value in (trigger_metadata or {}).items():
        request.trigger_metadata[key].CopyFrom(protos.TypedData(string=value))
    return protos.StreamingMessage(request_id=str(uuid.uuid4()), invocation_request=request)


def timer_info(protos: Any, *, past_due: bool = False) -> Any:
    """The host serialises the timer's `TimerInfo` to JSON (Newtonsoft, property names as in
    .NET): the schedule, its status and whether the run is late."""
    now = datetime.now(UTC)
    stamp = "%Y-%m-%dT%H:%M:%S.%f0+00:00"
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": (now - timedelta(minutes=10)).strftime(stamp),
            "Next": (now + timedelta(minutes=10)).strftime(stamp),
            "LastUpdated": now.strftime(stamp),
        },
        "IsPastDue": past_due,
    }
    return protos.TypedData(json=json.dumps(info, separators=(",", ":")))


def http_answer(protos: Any, response: Any) -> HostAnswer:
    """What the client gets. A failed invocation is the host's bare 500. Otherwise the returned
    `RpcHttp`: its status code (a string: parsed as an integer, else 200), `content-type` as the
    response's content type and every other header as written, and the body as the bytes (or the
    string, UTF-8) the worker sent."""
    if response.result.status != protos.StatusResult.Success:
        return HostAnswer(500, [], b"")
    value = response.return_value
    assert value.WhichOneof("data") == "http", f"the function returned {value.WhichOneof('data')}"
    http = value.http
    status = int(http.status_code) if http.status_code.strip().lstrip("-").isdigit() else 200
    headers = list(http.headers.items())
    kind = http.body.WhichOneof("data")
    if kind == "bytes":
        body = http.body.bytes
    elif kind == "string":
        body = http.body.string.encode("utf-8")
    elif kind is None:
        body = b""
    else:
        raise AssertionError(f"the worker answered a {kind} body, which the app never sends")
    return HostAnswer(status, headers, body)
