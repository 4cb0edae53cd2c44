"""The embedded account store: one SQLite file under LOCAL_STATE_DIR (`make run`, tests).

`store.SqliteAccountStore` composes the parts, one module each: `file` (connections and write
transactions), `schema` (the tables, and the upgrade of an earlier release's file), `keys`,
`accounts`, `schedule` and `events`.
"""
