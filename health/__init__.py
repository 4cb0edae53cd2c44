"""GET /api/health (anonymous): can the app reach its key store and account store?"""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.health import probe
from shared.app.http_edge import endpoint, json_response


@endpoint("health", ("GET",))
def main(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(probe(get_context()))
