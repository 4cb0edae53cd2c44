"""Turns what the tenant said into the verification report's checks. Pure: no I/O, and nothing
from the adapters or above (only `shared.core` and `shared.support`).

`table.STEPS` is the whole decision table: each check is one entry (its id, the checks it needs,
the Graph reads it needs, and how it is decided from the gathered `answers.Answers`), and
`table.decide` walks it in order. The modules beside it decide one check each from one answer
(metadata, token, a Graph read), with the title, the detail and, for every `fail` and `warn`,
the concrete step the customer takes in the Entra admin center; `report` puts the report
together.
"""
