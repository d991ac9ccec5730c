"""Running well: the health verdict, log rate limits and retry backoff (pure).

Each module has its own ``__all__``; import names from the module.
"""

__all__ = ["backoff", "health", "log_limits"]
