"""GET /api/health (anonymous): can the app reach its key store and account store?"""

import azure.functions as func

from shared.app_context import check_settings_at_import, get_context
from shared.health import probe
from shared.http_edge import endpoint, json_response

# Settings are checked when the host loads the function, not at the first request
# (AUTH_MODE=local in Azure is refused at start-up).
check_settings_at_import()


def methods(req: func.HttpRequest) -> tuple[str, ...]:
    return ("GET",)


@endpoint("health", methods)
def main(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(probe(get_context()))
