"""Directive matching in the SDK's ThrottleCache (fed directly, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prsm_events.events.directives import ThrottleDirective
from prsm_events.sdk.throttle_cache import ThrottleCache
from prsm_events.settings import Settings

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def directive(scope: str, **kw: object) -> ThrottleDirective:
    fields = {"scope": scope, "origin": "budget:day", "action": "block", "reason": "x",
              "message": "x", "ts": NOW, "until": NOW + timedelta(hours=1), **kw}
    return ThrottleDirective.model_validate(fields)


def feed(cache: ThrottleCache, d: ThrottleDirective | None, key: str | None = None) -> None:
    cache._apply((key or (d.key if d else "")).encode(),
                 None if d is None else d.model_dump_json().encode())


def test_block_matches_the_scope_and_its_children_only() -> None:
    cache = ThrottleCache(Settings(kafka_bootstrap="127.0.0.1:1"))
    feed(cache, directive("tenant:acme/service:chat"))
    assert not cache.check("acme", service="chat", now=NOW).allowed
    assert cache.check("acme", service="search", now=NOW).allowed
    assert cache.check("other", service="chat", now=NOW).allowed
    verdict = cache.check("acme", service="chat", now=NOW)
    assert verdict.retry_after_s == 3600.0 and verdict.directive is not None
    assert cache.check("acme", service="chat", now=NOW + timedelta(hours=2)).allowed  # expired
    feed(cache, None, "tenant:acme/service:chat|budget:day")  # tombstone
    assert cache.check("acme", service="chat", now=NOW).allowed


def test_the_latest_lifting_directive_is_reported() -> None:
    cache = ThrottleCache(Settings(kafka_bootstrap="127.0.0.1:1"))
    feed(cache, directive("tenant:acme"))
    feed(cache, directive("global", origin="budget:month", until=NOW + timedelta(days=3)))
    verdict = cache.check("acme", now=NOW)
    assert verdict.directive is not None and verdict.directive.scope == "global"


def test_throttle_lets_a_stable_share_through() -> None:
    cache = ThrottleCache(Settings(kafka_bootstrap="127.0.0.1:1"))
    feed(cache, directive("tenant:acme", origin="anomaly", action="throttle",
                          allow_fraction=0.25))
    allowed = [cache.check("acme", request_id=f"r{i}", now=NOW).allowed for i in range(4000)]
    assert 0.22 < sum(allowed) / len(allowed) < 0.28
    again = [cache.check("acme", request_id=f"r{i}", now=NOW).allowed for i in range(4000)]
    assert allowed == again  # a retry of the same request gets the same answer
