"""Running well: the health verdict, log rate limits, retry backoff and the group's answers
read as one (pure).

Each module has its own ``__all__``; import names from the module.
"""

__all__ = ["backoff", "group_views", "health", "log_limits"]
