"""The decision policy, case by case (pure: no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from prsm_events.accounting.budgets import Budget
from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.ledger_view import NANO, BudgetView
from prsm_events.decisions.policy import DecisionContext, PolicyConfig, decide
from prsm_events.decisions.routing import Ask, estimate
from prsm_events.events.decision import REASON_CODES
from prsm_events.events.request import RequestEvent
from tests.factories import DAY_S
from tests.factories import request as new_request
from tests.factories import view as budget_view
from tests.unit.events.test_decision import read_back

CATALOG = Catalog.shipped()
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
T = NOW.timestamp()
DAY_END = datetime(2026, 3, 11, tzinfo=UTC).timestamp()
GPT4O = 0.0075  # 1000 input + 500 output tokens at gpt-4o list price


def view(limit: float, spent: float = 0.0, reserved: float = 0.0, *, hard: bool = True,
         scope: str = "tenant:acme", period: str = "day") -> BudgetView:
    """A budget of ``limit`` and its figures at noon of its day."""
    b = Budget(scope=scope, period=period, limit_usd=limit, hard=hard)
    return budget_view(b, spent, reserved, now=T, start=DAY_END - DAY_S, end=DAY_END)


def req(**kw: Any) -> RequestEvent:
    return new_request(**{"request_id": "r1", "ts": NOW, **kw})


def run(request: RequestEvent, *views: BudgetView, down: tuple[str, ...] = (),
        **config: Any) -> Any:
    def availability(provider: str, model: str) -> float:
        return 0.0 if provider in down or f"{provider}/{model}" in down else 1.0
    ctx = DecisionContext(CATALOG, list(views), availability, PolicyConfig(**config), NOW)
    decision = decide(request, ctx)
    read_back(decision)  # every decision reads back through the contract unchanged
    return decision


CASES = [
    # (id, request fields, views, extra, expected (action, code, model or None))
    ("fits", {}, [view(1.0)], {}, ("allow", "within_budget", "gpt-4o")),
    ("fits every budget exactly", {}, [view(GPT4O), view(1, scope="global")], {},
     ("allow", "within_budget", "gpt-4o")),
    ("no budget: allow and record", {}, [], {}, ("allow", "no_budget", "gpt-4o")),
    ("no budget: reject by config", {}, [], {"unbudgeted": "reject"},
     ("reject", "no_budget", "gpt-4o")),
    ("unknown model", {"model": "gpt-99"}, [view(1.0)], {}, ("reject", "unknown_model", None)),
    ("unknown provider of a known model", {"provider": "acme-cloud"}, [view(1.0)], {},
     ("reject", "unknown_model", None)),
    ("soft budgets never block", {}, [view(0.001, 0.001, hard=False)], {},
     ("allow", "within_budget", "gpt-4o")),
    ("low priority defers", {"priority": "low"}, [view(0.01, 0.005)], {},
     ("defer", "deferred_low_priority", "gpt-4o")),
    ("normal priority routes cheaper", {}, [view(0.01, 0.005)], {},
     ("route", "routed_cheaper_model", None)),
    ("high priority is not deferred", {"priority": "high"}, [view(0.01, 0.005)], {},
     ("route", "routed_cheaper_model", None)),
    ("over the ceiling routes cheaper", {"max_cost_usd": 0.002}, [view(1.0)], {},
     ("route", "routed_cheaper_model", None)),
    ("nothing meets the ceiling", {"max_cost_usd": 0.0000001}, [view(1.0)], {},
     ("reject", "over_cost_ceiling", "gpt-4o")),
    ("exhausted budget throttles", {"min_quality": 0.99}, [view(1.0, 0.995)], {},
     ("throttle", "budget_exhausted", "gpt-4o")),
    ("too big for what is left rejects", {"min_quality": 0.99}, [view(0.01, 0.005)], {},
     ("reject", "over_budget", "gpt-4o")),
    ("provider down: another provider", {"min_quality": 0.8}, [view(1.0)],
     {"down": ("openai", "azure/gpt-4.1", "google", "deepseek")},
     ("route", "routed_other_provider", "gpt-4o")),
    ("provider down everywhere", {"min_quality": 0.8, "capabilities": ["vision"]}, [view(1.0)],
     {"down": ("openai", "azure", "google", "anthropic", "aws-bedrock", "google-vertex",
               "mistral", "deepseek")}, ("reject", "provider_unavailable", "gpt-4o")),
]


@pytest.mark.parametrize(("request_fields", "views", "extra", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decision_cases(request_fields: dict, views: list, extra: dict, expected: tuple) -> None:
    down = extra.pop("down", ())
    d = run(req(**request_fields), *views, down=down, **extra)
    action, code, model = expected
    assert (d.action.value, d.reason.code) == (action, code), d.reason.message
    if model is not None:
        assert d.model == model
    assert d.reason.code in REASON_CODES and d.reason.message
    assert d.request_id == "r1" and d.requested_model == request_fields.get("model", "gpt-4o")
    if views and code not in ("unknown_model", "over_cost_ceiling", "provider_unavailable"):
        assert d.budget is not None and d.budget["limit_usd"] > 0


def test_route_picks_best_score_among_capable_cheaper_models() -> None:
    d = run(req(min_quality=0.8, capabilities=["tools", "vision"]), view(0.01, 0.005))
    ask = Ask(1000, 500, 0.8, ("tools", "vision"))
    options = [e for e in CATALOG.entries if e.quality >= 0.8 and e.model != "gpt-4o"
               and {"tools", "vision"} <= set(e.capabilities)
               and estimate(e, ask) <= 0.005 * NANO]
    best = max(options, key=lambda e: e.quality / estimate(e, ask))
    assert d.model == best.model and d.provider == best.provider
    assert d.est_cost_usd == estimate(best, ask) / NANO
    entry = CATALOG.lookup(d.model, d.provider)
    assert entry is not None and entry.quality >= 0.8
    # what routing saved and gave up, as the routing-savings report reads them
    requested = CATALOG.lookup("gpt-4o", None)
    assert requested is not None
    assert d.requested_est_cost_usd == GPT4O == estimate(requested, ask) / NANO
    assert d.quality_given_up == pytest.approx(requested.quality - entry.quality)


def test_only_a_routed_decision_says_what_routing_saved() -> None:
    kept = run(req(), view(1.0))
    assert (kept.requested_est_cost_usd, kept.quality_given_up) == (None, None)
    moved = run(req(min_quality=0.8), view(1.0), down=("openai", "azure/gpt-4.1", "google",
                                                       "deepseek"))
    assert moved.reason.code == "routed_other_provider" and moved.quality_given_up == 0.0
    assert moved.requested_est_cost_usd == GPT4O


def test_route_respects_every_budget_and_the_quality_default() -> None:
    # without min_quality routes keep quality >= requested (0.8) - 0.1
    d = run(req(), view(0.01, 0.009), view(1, scope="global"))
    entry = CATALOG.lookup(d.model, d.provider)
    assert d.action.value == "route" and entry is not None and entry.quality >= 0.7
    assert d.est_cost_usd <= 0.001


def test_defer_retry_after_by_what_blocks() -> None:
    spent = run(req(priority="low"), view(0.01, 0.005))
    assert spent.retry_after_s == pytest.approx(DAY_END - T)
    in_flight = run(req(priority="low"), view(0.01, 0.0, reserved=0.005))
    assert in_flight.retry_after_s == 5.0 and "in flight" in in_flight.reason.message
    # a request larger than the whole limit can never wait its way in: it is routed
    never = run(req(priority="low"), view(0.005))
    assert never.action.value == "route"


def test_other_provider_within_ten_percent_over_the_ceiling() -> None:
    cost = GPT4O
    d = run(req(min_quality=0.8, max_cost_usd=cost / 1.05), view(1.0), down=("openai/gpt-5",
            "openai/gpt-5-mini", "openai/o4-mini", "openai/o3", "openai/gpt-4.1",
            "azure/gpt-4.1", "google", "anthropic", "mistral", "deepseek", "openai/gpt-4o"))
    assert (d.action.value, d.reason.code, d.provider) == (
        "route", "routed_other_provider", "azure")
    tight = run(req(min_quality=0.8, max_cost_usd=cost / 1.2), view(1.0), down=(
        "openai", "azure/gpt-4.1", "google", "anthropic", "mistral", "deepseek"))
    assert (tight.action.value, tight.reason.code) == ("reject", "over_cost_ceiling")


def test_throttle_retry_after_is_the_period_end() -> None:
    d = run(req(min_quality=0.99), view(1.0, 1.0))
    assert d.action.value == "throttle" and d.retry_after_s == pytest.approx(DAY_END - T)
    assert d.budget is not None and d.budget["remaining_usd"] == 0.0
    assert d.forecast is not None and d.forecast["method"] == "run_rate"


def test_defaults_fill_missing_token_estimates() -> None:
    d = run(req(est_input_tokens=None, est_output_tokens=None), view(1.0),
            default_input_tokens=2000, default_output_tokens=100)
    assert d.est_cost_usd == pytest.approx(2000 * 2.5e-6 + 100 * 10e-6)
