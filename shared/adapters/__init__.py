"""All I/O: the outbound HTTP policy, caller identity, the account and key stores, and the
tenant client. Concrete backends are built only by the composition root (`shared.app.bootstrap`).
"""
