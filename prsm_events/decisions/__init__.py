"""Answering a request: the decision policy, model and provider routing, admission against
the ledger, pacing, what budget figures announce, deferrals and provider health (pure).

Each module has its own ``__all__``; import names from the module.
"""

__all__ = [
    "admission",
    "budget_signals",
    "deferred",
    "pacing",
    "policy",
    "provider_health",
    "routing",
]
