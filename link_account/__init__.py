"""POST /api/accounts (Connect), GET /api/accounts, GET, PATCH and DELETE /api/accounts/{id}."""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response, read_json_object
from shared.context import AppContext
from shared.linking import accounts
from shared.linking.history import acting_as
from shared.renewal import renew as renewal
from shared.support.deadline import deadline

# A JSON merge patch (RFC 7396); plain JSON is read the same way.
PATCH_MEDIA_TYPES = ("application/merge-patch+json", "application/json")


def methods(req: func.HttpRequest) -> tuple[str, ...]:
    """`/api/accounts` is the collection (GET, POST), `/api/accounts/{id}` one account."""
    return ("GET", "PATCH", "DELETE") if req.route_params.get("id") else ("GET", "POST")


@endpoint("link_account", methods)
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    caller = ctx.authenticator.caller(req.headers.get("Authorization"))
    with acting_as(caller.actor):  # the history records who linked or unlinked
        return serve(req, ctx, caller.owner)


def serve(req: func.HttpRequest, ctx: AppContext, owner: str) -> func.HttpResponse:
    account_id = req.route_params.get("id")
    if not account_id:  # the collection: GET or POST (`methods` refuses the rest)
        if req.method == "POST":
            account = accounts.link_account(ctx, owner, read_json_object(req))
            return json_response(
                account.to_resource(), 201, {"Location": f"/api/accounts/{account.id}"}
            )
        return json_response(accounts.list_accounts(ctx, owner, dict(req.params)))
    if_match = req.headers.get("If-Match")
    if req.method == "DELETE":
        accounts.unlink_account(ctx, owner, account_id, if_match)
        return func.HttpResponse(status_code=204, headers={"Cache-Control": "no-store"})
    if req.method == "PATCH":
        body = read_json_object(req, PATCH_MEDIA_TYPES)
        with deadline(ctx.settings.verify_timeout_seconds):  # a taken-over renewal's addKey
            account = renewal.patch(ctx, owner, account_id, body, if_match)
    else:
        account = accounts.get_account(ctx, owner, account_id)
    return json_response(account.to_resource(), headers={"ETag": account.etag})
