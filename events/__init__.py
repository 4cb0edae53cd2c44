"""GET /api/events: the owner's change feed, oldest first, with the cursor to pass next."""

import azure.functions as func

from shared import history
from shared.app_context import check_settings_at_import, get_context
from shared.http_edge import endpoint, json_response

# Settings are checked when the host loads the function, not at the first request
# (AUTH_MODE=local in Azure is refused at start-up).
check_settings_at_import()


def methods(req: func.HttpRequest) -> tuple[str, ...]:
    return ("GET",)


@endpoint("events", methods)
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    return json_response(history.change_feed(ctx, owner, dict(req.params)))
