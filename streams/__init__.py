"""The Faust app: topics, tables, thin agents, timers and web views.

Agents only move data between topics, tables and the pure logic in ``prsm_events``.
"""

from streams.app import build_app

__all__ = ["build_app"]
