"""The local host's HTTP front, with every function run by Microsoft's Python worker library.

Routing, the method check, the body limit and the query and body the host hands over stay the
local host's (`localdev/host.py`, its reading of the Functions host); what it did itself, calling
`main(req)` with an `azure.functions.HttpRequest`, is replaced by an `InvocationRequest` to the
library and the `InvocationResponse` converted back as the host converts it.
"""

from __future__ import annotations

import logging
from typing import Any

from localdev.functions import FunctionSpec
from localdev.host import HostAnswer, HostRequest, LocalHost

from . import host_messages
from .worker import Worker

log = logging.getLogger("tests.runtime")


class WorkerHost(LocalHost):
    def __init__(self, worker: Worker, **options: Any) -> None:
        super().__init__(worker.app_root, **options)
        self.worker = worker
        self.responses: list[Any] = []  # every InvocationResponse, for the tests to read

    def invoke_http(self, name: str, request: HostRequest) -> HostAnswer:
        protos = self.worker.protos
        data = host_messages.rpc_http(protos, request, self.worker.capabilities)
        trigger = self.functions[name].trigger_binding["name"]
        message = host_messages.invocation(protos, trigger, data, request.route_params)
        response = self.worker.invoke(name, message)
        self.responses.append(response)
        return host_messages.http_answer(protos, response)

    def run_function(self, spec: FunctionSpec, *, past_due: bool = False) -> None:
        """A timer run as the host starts one: the `TimerInfo` JSON under the trigger's name."""
        response = self.run_timer(spec.name, past_due=past_due)
        if response.result.status != self.worker.protos.StatusResult.Success:
            log.error("function %s failed in the worker", spec.name)

    def run_timer(self, name: str, *, past_due: bool = False) -> Any:
        protos = self.worker.protos
        trigger = self.functions[name].trigger_binding["name"]
        data = host_messages.timer_info(protos, past_due=past_due)
        response = self.worker.invoke(name, host_messages.invocation(protos, trigger, data))
        self.responses.append(response)
        return response
