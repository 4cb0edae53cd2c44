"""Timer: re-verify every linked account of every owner and tidy the key store."""

import logging

import azure.functions as func

from shared import health_check
from shared.app_context import get_context


def main(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.getLogger("m365link.health_check").info("health_check is running late")
    health_check.run(get_context())
