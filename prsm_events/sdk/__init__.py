"""The client SDK for services and gateways: publish usage, ask for decisions, follow
throttle directives.

Each module has its own ``__all__``; import names from the module.
"""

__all__ = ["client_lifecycle", "decision_client", "publisher", "throttle_cache"]
