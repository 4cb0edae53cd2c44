"""POST /api/accounts/{id}/verify: check the tenant step by step and return the report."""

import azure.functions as func

from shared.app_context import get_context
from shared.http_edge import endpoint, json_response
from shared.verify import verify_account


@endpoint("verify_account")
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    return json_response(verify_account(ctx, owner, req.route_params["id"]))
