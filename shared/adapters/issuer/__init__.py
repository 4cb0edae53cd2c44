"""The app as an OpenID issuer: the issuer key ring (its keys' lifecycle, the signer of federated
assertions and the public JWKS)."""

from shared.adapters.issuer.keyring import IssuerKeyring, IssuerKeyUnavailable, IssuerUpkeep

__all__ = ["IssuerKeyUnavailable", "IssuerKeyring", "IssuerUpkeep"]
