"""POST /api/accounts/{id}/verify: check the tenant step by step and return the report."""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response
from shared.linking.history import acting_as
from shared.verification.verify import verify_account


@endpoint("verify_account", ("POST",))
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    caller = ctx.authenticator.caller(req.headers.get("Authorization"))
    with acting_as(caller.actor):  # a `verified` event names who asked
        return json_response(verify_account(ctx, caller.owner, req.route_params["id"]))
