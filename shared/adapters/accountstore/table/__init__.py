"""The account store on Azure Table Storage: one partition per owner, so every rule that must
hold atomically is an entity-group transaction inside it (creating the account, its tenant +
application uniqueness row and binding the key happen together or not at all), and updates
carry the ETag they read (optimistic concurrency).

`store.TableAccountStore` composes the parts, one module each: `client` (the calls, their
failures, the owner's turn), `layout` (where each row lives), `keys`, `accounts`, `events` (the
owner's `meta` row, history, change feed, retention), `schedule` (the health check's sets,
leases, chores) and `sweep`.
"""
