"""GET /api/oidc/.well-known/openid-configuration and GET /api/oidc/jwks (anonymous): the
OpenID issuer that customers' federated credentials trust. No caller is read: Entra fetches
these documents with no credentials."""

import azure.functions as func

from shared.app import oidc
from shared.app.bootstrap import get_context
from shared.app.http_edge import endpoint, json_response


@endpoint("oidc_issuer", ("GET", "HEAD"))
def main(req: func.HttpRequest) -> func.HttpResponse:
    body = oidc.document(get_context(), req.route_params.get("document"))
    return json_response(body, headers=oidc.CACHE_HEADERS)
