"""The domain, pure: the account/key/rotation model, errors, settings, certificates, clouds,
the schedule policy, input rules, the role tables and the answers a tenant gives.

Importable without requests, msal, jwt or azure (an import-linter contract holds it)."""
