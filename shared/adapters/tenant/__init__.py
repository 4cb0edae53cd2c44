"""A customer's tenant: Entra metadata and tokens, the Graph batch, client assertions, and the
app registration's own credentials."""
