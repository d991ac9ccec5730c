"""Each scoring tick, without I/O: spend metered per scope, period-end outlooks, and the
tick itself (forecasts, pacing pressure, anomalies) over the batch scorer in ``scoring``.

Each module has its own ``__all__``; import names from the module.
"""

__all__ = ["meter", "outlook", "pacing_directives", "spend_watch"]
