"""GET /api/accounts/{id}/history: one account's events, newest first, paged."""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response
from shared.linking import history


@endpoint("account_history", ("GET",))
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    return json_response(
        history.account_history(ctx, owner, req.route_params["id"], dict(req.params))
    )
