"""Who is calling: the owner (portal customer) from an Entra bearer token, or `local-dev`.

Tokens are validated here, not by App Service authentication: signature against the issuer's
JWKS (fetched through `requests`, so REQUESTS_CA_BUNDLE applies), `exp`/`nbf` with at most five
minutes of skew, `aud` and `iss`.
"""
