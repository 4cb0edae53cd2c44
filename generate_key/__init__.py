"""POST /api/keys makes a key pair + certificate, or a federated credential (`kind`); GET
/api/keys/{keyId} reads it or downloads its certificate or credential JSON (`format`)."""

import azure.functions as func

from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response, read_json_object
from shared.linking import keys


def methods(req: func.HttpRequest) -> tuple[str, ...]:
    """`/api/keys` is the collection (POST), `/api/keys/{keyId}` one key (GET)."""
    return ("GET",) if req.route_params.get("keyId") else ("POST",)


@endpoint("generate_key", methods)
def main(req: func.HttpRequest) -> func.HttpResponse:
    ctx = get_context()
    owner = ctx.authenticator.owner(req.headers.get("Authorization"))
    key_id = req.route_params.get("keyId")
    if not key_id:
        record = keys.create_key(ctx, owner, read_json_object(req))
        return json_response(record.to_resource(), 201, {"Location": f"/api/keys/{record.key_id}"})
    record = keys.get_key(ctx, owner, key_id)
    fmt = req.params.get("format")
    if fmt is None:
        return json_response(record.to_resource())
    body, content_type, filename = keys.download(record, fmt)
    return func.HttpResponse(
        body,
        status_code=200,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
        mimetype=content_type,
    )
