"""Verifying a linked account: sign in, gather the tenant's answers in one batch, decide, record."""
