"""POST, GET and DELETE /api/accounts/{id}/rotation: start, read and cancel a renewal, or a move
to the other kind of credential (POST's `kind`: certificate | federated)."""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response, read_json_object
from shared.linking.history import acting_as
from shared.renewal import renew as renewal
from shared.renewal import rotation as rotations
from shared.support.deadline import deadline


@endpoint("account_rotation", ("GET", "POST", "DELETE"))
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    caller = ctx.authenticator.caller(req.headers.get("Authorization"))
    account_id = req.route_params["id"]
    with acting_as(caller.actor):  # the history records who started or cancelled it
        if req.method == "POST":
            body = read_json_object(req) if req.get_body() else {}
            # The body (kind, validityDays, keySize) is read by renewal.start (new_rotation).
            with deadline(ctx.settings.verify_timeout_seconds):  # automatic renewal's addKey
                account = renewal.start(ctx, caller.owner, account_id, body)
            assert account.rotation is not None
            return json_response(
                account.rotation.to_resource(account.id),
                201,
                {"Location": f"/api/accounts/{account.id}/rotation"},
            )
        if req.method == "DELETE":
            with deadline(ctx.settings.verify_timeout_seconds):
                renewal.cancel(ctx, caller.owner, account_id)
            return func.HttpResponse(status_code=204, headers={"Cache-Control": "no-store"})
        account, rotation = rotations.rotation_of(ctx, caller.owner, account_id)
        return json_response(rotation.to_resource(account.id))
