"""Timer: re-verify every linked account of every owner and tidy the key store."""

import logging

import azure.functions as func

from shared.app.bootstrap import check_settings_at_import, get_context
from shared.app.telemetry import invocation
from shared.timer import run as health_check

# A timer has no HTTP endpoint to check them: settings are checked when the host loads it.
check_settings_at_import()


# The host passes `context` (its trace context among it) since `main` names it, typed exactly
# `func.Context` as the worker requires; the local host passes none.
def main(timer: func.TimerRequest, context: func.Context = None) -> None:  # type: ignore[assignment]
    with invocation("timer health_check", "health_check", "timer", context):
        if timer.past_due:
            logging.getLogger("m365link.health_check").info("health_check is running late")
        health_check.run(get_context())
