"""GET /api/events: the owner's change feed, oldest first, with the cursor to pass next."""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response
from shared.linking import history


@endpoint("events", ("GET",))
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    return json_response(history.change_feed(ctx, owner, dict(req.params)))
