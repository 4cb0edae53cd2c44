"""GET /api/onboarding: does the portal still show its first-login cloud-selection screen?"""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response
from shared.linking import accounts


@endpoint("onboarding", ("GET",))
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    return json_response(accounts.onboarding(ctx, owner))
