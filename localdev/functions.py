"""Reads the function app the way the Functions host does: host.json + one function.json per folder.

The local host serves what is found here, so a route exists locally exactly when Core Tools would
serve it.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_ROOT = Path(__file__).resolve().parent.parent
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?=]+)*(\?)?(?:=[^}]*)?\}")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    folder: Path
    trigger: str  # binding type of the trigger: httpTrigger, timerTrigger, ...
    entry_point: str = "main"
    script_file: str = "__init__.py"
    route: str | None = None
    methods: tuple[str, ...] = ()
    schedule: str | None = None
    run_on_startup: bool = False
    trigger_binding: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        module_name = self.name
        if self.script_file != "__init__.py":
            module_name += "." + Path(self.script_file).stem
        module = importlib.import_module(module_name)
        handler: Callable[..., Any] = getattr(module, self.entry_point)
        return handler


def route_prefix(root: Path = APP_ROOT) -> str:
    host = json.loads((root / "host.json").read_text())
    prefix: str = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


def discover(root: Path = APP_ROOT) -> list[FunctionSpec]:
    specs = []
    for function_json in sorted(root.glob("*/function.json")):
        config = json.loads(function_json.read_text())
        bindings = config.get("bindings", [])
        trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
        if trigger is None or config.get("disabled"):
            continue
        folder = function_json.parent
        specs.append(
            FunctionSpec(
                name=folder.name,
                folder=folder,
                trigger=trigger["type"],
                entry_point=config.get("entryPoint", "main"),
                script_file=config.get("scriptFile", "__init__.py"),
                route=trigger.get("route", folder.name)
                if trigger["type"] == "httpTrigger"
                else None,
                methods=tuple(m.upper() for m in trigger.get("methods", [])),
                schedule=trigger.get("schedule"),
                run_on_startup=bool(trigger.get("runOnStartup", False)),
                trigger_binding=trigger,
            )
        )
    return specs


def werkzeug_rules(route: str) -> list[str]:
    """Turn a Functions route template into werkzeug rule strings.

    `{name}` and `{name:constraint}` become `<name>`; an optional `{name?}` gives a rule with and
    one without the segment; a catch-all `{*name}` becomes `<path:name>`.
    """
    route = route.strip("/")
    optional = [m for m in _PARAM.finditer(route) if m.group(3)]
    with_params = _PARAM.sub(
        lambda m: f"<path:{m.group(2)}>" if m.group(1) else f"<{m.group(2)}>", route
    )
    rules = [with_params]
    if optional:
        # Functions allows an optional parameter only as the last segment.
        without = route[: optional[-1].start()].rstrip("/")
        rules.append(_PARAM.sub(lambda m: f"<{m.group(2)}>", without))
    return rules
