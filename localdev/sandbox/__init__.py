"""The sandbox tenant: a local HTTPS test double of Entra, Microsoft Graph and Key Vault.

See README.md beside this file for the routes and the admin API.
"""

from localdev.sandbox.admin_client import SandboxAdmin, SandboxAdminError
from localdev.sandbox.server import Sandbox

__all__ = ["Sandbox", "SandboxAdmin", "SandboxAdminError"]
