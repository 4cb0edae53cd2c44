"""Keys and linked accounts: generate, link, change, unlink, history and the change feed."""
