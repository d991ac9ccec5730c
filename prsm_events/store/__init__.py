"""ClickHouse, only through clickhouse-connect: the event store and the cost reports.

Each module has its own ``__all__``; import names from the module.
"""

__all__ = ["clickhouse", "reports"]
