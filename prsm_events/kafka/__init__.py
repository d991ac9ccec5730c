"""Kafka at the edges: how clients connect (TLS, SASL), topics and their provisioning,
compacted config topics, and the local development broker.

Each module has its own ``__all__``; import names from the module.
"""

__all__ = [
    "admin",
    "aiokafka_compat",
    "compacted_view",
    "config_topics",
    "connection",
    "dev_broker",
    "dev_certificates",
    "partitioning",
    "topics",
]
