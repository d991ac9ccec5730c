"""Money and who spent it: the model catalog and pricing, budget scopes and periods, rolling
spend, budgets, and the ledger of spent and reserved amounts (pure, no I/O).

Each module has its own ``__all__``; import names from the module.
"""

__all__ = [
    "budgets",
    "catalog",
    "dedup",
    "ingest",
    "ledger",
    "ledger_view",
    "periods",
    "pricing",
    "scopes",
    "spend",
]
