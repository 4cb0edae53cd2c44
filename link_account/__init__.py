"""POST /api/accounts (Connect), GET /api/accounts, GET and DELETE /api/accounts/{id}."""

import azure.functions as func

from shared import accounts
from shared.app_context import get_context
from shared.errors import MethodNotAllowed
from shared.http_edge import endpoint, json_response, read_json_object


@endpoint("link_account")
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    account_id = req.route_params.get("id")
    if req.method == "POST":
        if account_id:
            raise MethodNotAllowed("POST goes to /api/accounts")
        account = accounts.link_account(ctx, owner, read_json_object(req))
        return json_response(
            account.to_resource(), 201, {"Location": f"/api/accounts/{account.id}"}
        )
    if req.method == "DELETE":
        if not account_id:
            raise MethodNotAllowed("DELETE needs an account: /api/accounts/{id}")
        accounts.unlink_account(ctx, owner, account_id)
        return func.HttpResponse(status_code=204, headers={"Cache-Control": "no-store"})
    if account_id:
        return json_response(accounts.get_account(ctx, owner, account_id).to_resource())
    return json_response({"value": [a.to_resource() for a in accounts.list_accounts(ctx, owner)]})
