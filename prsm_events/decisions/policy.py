"""The decision policy: one pure function from (request, budgets, catalog, health) to decision.

Order: an unknown model is rejected; with no budget the configured default applies; a budget
with pacing (``ctx.pacing``) routes, defers or throttles its share of ``low``/``normal``
requests (``decisions.pacing``) and keeps its reserve for ``high``/``critical`` ones; if the
request fits every hard budget, its cost ceiling and an available provider, it is allowed.
Otherwise, in this order: ``low`` priority is deferred until the budget frees up; the best
cheaper model that meets the constraints is routed to; another provider of the same model is
routed to (up to 10% over the ceiling); else the request is throttled (a hard budget is
spent: retry after the period rolls) or rejected, always with a stable reason code.

>>> from datetime import datetime, UTC
>>> from prsm_events.accounting.budgets import Budget
>>> from prsm_events.accounting.catalog import Catalog
>>> from prsm_events.accounting.ledger_view import BudgetView, NANO
>>> from prsm_events.events.request import RequestEvent
>>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
>>> day = Budget(scope="tenant:acme", period="day", limit_usd=1.0)
>>> view = BudgetView(day, now.timestamp(), spent=int(0.99 * NANO), reserved=0,
...                   start=now.timestamp() - 43200, end=now.timestamp() + 43200)
>>> req = RequestEvent(request_id="r1", ts=now, tenant="acme", service="chat",
...                    model="gpt-4o", est_input_tokens=4000, est_output_tokens=1000)
>>> d = decide(req, DecisionContext(Catalog.shipped(), [view], lambda p, m: 1.0, now=now))
>>> d.action.value, d.reason.code, d.model
('route', 'routed_cheaper_model', 'deepseek-chat')
>>> low = req.model_copy(update={"priority": Priority.LOW})
>>> d = decide(low, DecisionContext(Catalog.shipped(), [view], lambda p, m: 1.0, now=now))
>>> d.action.value, d.retry_after_s
('defer', 43200.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Literal

import msgspec

from prsm_events.accounting.catalog import Catalog, ModelPrice
from prsm_events.accounting.ledger import to_nano
from prsm_events.accounting.ledger_view import BudgetView, usd
from prsm_events.decisions.pacing import PACED_PRIORITIES, PacingAction
from prsm_events.decisions.routing import Ask, Offer, cheaper_model, estimate, other_provider
from prsm_events.events.decision import Action, DecisionRecord, ReasonRecord
from prsm_events.events.fast_path import Request
from prsm_events.events.request import Priority

__all__ = ["DecisionContext", "PolicyConfig", "decide"]


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Knobs of the policy (see ``Settings`` for their environment variables)."""

    unbudgeted: Literal["allow", "reject"] = "allow"
    default_input_tokens: int = 1000
    default_output_tokens: int = 500
    min_availability: float = 0.5
    provider_overrun: float = 0.10
    quality_slack: float = 0.10
    """Without min_quality, routes keep quality >= the requested model's minus this."""
    exhausted_below: float = 0.01
    """A hard budget with less than this share of its limit left is exhausted (throttle)."""
    reservation_retry_s: float = 5.0
    """retry_after when only outstanding reservations stand in the way."""
    allotment_retry_s: float = 0.25
    """retry_after when a global budget's allotment is on its way to the request's
    partition (PRSM_ESCROW_INTERVAL_S)."""


class DecisionContext(msgspec.Struct, frozen=True):
    catalog: Catalog
    views: Sequence[BudgetView]
    """Every budget that applies to the request, at ``now``."""
    availability: Callable[[str, str], float]
    config: PolicyConfig = msgspec.field(default_factory=PolicyConfig)
    now: datetime | None = None
    pacing: Mapping[str, PacingAction] = msgspec.field(default_factory=dict)
    """Pacing actions by budget key (only budgets with ``pacing`` on use theirs)."""
    forecasts: Mapping[str, dict[str, object]] = msgspec.field(default_factory=dict)
    """The scorer's latest forecast by budget key (else a run-rate forecast is given)."""


_pressure = attrgetter("pressure")
_remaining = attrgetter("remaining")


def decide(request: Request, ctx: DecisionContext) -> DecisionRecord:
    """The decision for one request (the caller reserves the estimate if it is admitted)."""
    cfg = ctx.config
    now = ctx.now or request.ts
    entry = ctx.catalog.lookup(request.model, request.provider)
    paced = [(v, ctx.pacing[v.budget.key]) for v in ctx.views
             if v.budget.pacing and v.budget.key in ctx.pacing] if ctx.pacing else []
    pace = max((a for _, a in paced), key=_pressure) if paced else None

    def answer(action: Action, code: str, message: str, offer: Offer | None = None,
               cost: int = 0, view: BudgetView | None = None,
               retry: float | None = None) -> DecisionRecord:
        chosen = offer.entry if offer else entry
        return DecisionRecord(
            request_id=request.request_id, ts=now, tenant=request.tenant, action=action,
            model=chosen.model if chosen else request.model,
            provider=chosen.provider if chosen else request.provider,
            requested_model=request.model, priority=str(request.priority),
            est_cost_usd=usd(offer.cost if offer else cost),
            requested_est_cost_usd=usd(estimate(entry, ask)) if offer and entry else None,
            quality_given_up=round(entry.quality - offer.entry.quality, 6)
            if offer and entry else None,
            reason=ReasonRecord(code=code, message=message),
            retry_after_s=None if retry is None else round(retry, 3),
            budget=view.figures() if view else None,
            forecast=(ctx.forecasts.get(view.budget.key) or view.run_rate_forecast())
            if view else None,
            pacing=pace.figures() if pace else None,
        )

    if entry is None:
        where = f" at provider '{request.provider}'" if request.provider else ""
        return answer(Action.REJECT, "unknown_model",
                      f"model '{request.model}'{where} is not in catalog {ctx.catalog.version}")
    ask = Ask(
        input_tokens=request.est_input_tokens
        if request.est_input_tokens is not None else cfg.default_input_tokens,
        output_tokens=request.est_output_tokens
        if request.est_output_tokens is not None else cfg.default_output_tokens,
        quality_floor=request.min_quality
        if request.min_quality is not None else entry.quality - cfg.quality_slack,
        capabilities=request.capabilities,
        ceiling=None if request.max_cost_usd is None else to_nano(request.max_cost_usd),
        min_availability=cfg.min_availability,
    )
    cost = estimate(entry, ask)
    hard = [v for v in ctx.views if v.budget.hard]
    kept = {id(v): a.reserve for v, a in paced} if request.priority in PACED_PRIORITIES else {}

    def fits_one(v: BudgetView, amount: int) -> bool:
        return v.fits(amount + kept.get(id(v), 0))

    def fits(amount: int) -> bool:
        return all(fits_one(v, amount) for v in hard)

    def tightest() -> BudgetView | None:
        """The budget with the least left (of the hard ones, if any)."""
        among = hard or ctx.views
        if len(among) < 2:
            return among[0] if among else None
        return min(among, key=_remaining)

    if not ctx.views:
        if cfg.unbudgeted == "reject":
            return answer(Action.REJECT, "no_budget", f"no budget applies to tenant "
                          f"'{request.tenant}' and unbudgeted requests are rejected", cost=cost)
        return answer(Action.ALLOW, "no_budget", "no budget applies; allowed and recorded",
                      cost=cost)
    blocking = [v for v in hard if not fits_one(v, cost)]
    over_ceiling = ask.ceiling is not None and cost > ask.ceiling
    available = ctx.availability(entry.provider, entry.model) >= cfg.min_availability
    step = pace.step_for(request.request_id, request.priority) if pace else None
    if pace is not None and step is not None:
        view = next(v for v, a in paced if a is pace)
        why = f"pacing {pace.budget_key} (pressure {pace.pressure:.2f})"
        if step == "throttle":
            return answer(Action.THROTTLE, "paced_throttle", f"{why}: {request.priority} "
                          f"request throttled", cost=cost, view=view, retry=pace.retry_after_s)
        if step == "defer":
            return answer(Action.DEFER, "paced_defer", f"{why}: low-priority work deferred",
                          cost=cost, view=view, retry=pace.retry_after_s)
        routed = cheaper_model(ctx.catalog, entry, ask, ctx.availability, fits)
        if routed is not None and not blocking:
            return answer(Action.ROUTE, "paced_route", f"{why}: {routed.entry.model} at "
                          f"{routed.entry.provider} instead of {entry.model}", offer=routed,
                          view=view)
    if not blocking and not over_ceiling and available:
        return answer(Action.ALLOW, "within_budget", "fits every budget", cost=cost,
                      view=tightest())

    if blocking and not over_ceiling and all(
            v.room is not None and v.room >= cost + kept.get(id(v), 0) for v in blocking):
        view = blocking[0]
        return answer(Action.DEFER, "awaiting_allotment",
                      f"{view.budget.key} has ${usd(view.room or 0):.6f} left over its "
                      f"partitions, but this partition's allotment is short by "
                      f"${usd(cost - view.remaining):.6f}: more is on its way",
                      cost=cost, view=view, retry=cfg.allotment_retry_s)
    if request.priority == Priority.LOW and blocking and not over_ceiling:
        waits = [(v, *v.seconds_until_fits(cost)) for v in blocking]
        if all(basis != "never" for _, _, basis in waits):
            view, wait, basis = max(
                waits, key=lambda w: cfg.reservation_retry_s if w[1] is None else w[1])
            retry = cfg.reservation_retry_s if wait is None else wait
            why = ("reservations of requests in flight" if basis == "reservations"
                   else "the period rolls" if basis == "period_end" else "older spend leaves "
                   "the window")
            return answer(Action.DEFER, "deferred_low_priority",
                          f"low priority and budget {view.budget.key} is short by "
                          f"${usd(cost - view.remaining):.6f}; retry after {why}",
                          cost=cost, view=view, retry=retry)

    routed = cheaper_model(ctx.catalog, entry, ask, ctx.availability, fits)
    if routed is not None:
        why = ("the budget" if blocking else "max_cost_usd" if over_ceiling
               else f"{entry.provider} availability")
        return answer(Action.ROUTE, "routed_cheaper_model",
                      f"{entry.model} does not fit {why}; {routed.entry.model} at "
                      f"{routed.entry.provider} meets quality >= {ask.quality_floor:.2f} and "
                      f"has the best performance/cost score", offer=routed,
                      view=tightest())
    moved = other_provider(ctx.catalog, entry, ask, ctx.availability, fits, cfg.provider_overrun)
    if moved is not None:
        return answer(Action.ROUTE, "routed_other_provider",
                      f"{entry.model} at {moved.entry.provider} instead of {entry.provider} "
                      f"(availability {moved.availability:.2f})", offer=moved,
                      view=tightest())
    if pace is not None and blocking and all(v.fits(cost) for v in blocking):
        return answer(Action.THROTTLE, "paced_throttle", f"what is left of "
                      f"{pace.budget_key} is kept for high/critical requests", cost=cost,
                      view=blocking[0], retry=pace.retry_after_s)
    return _refuse(request, entry, cost, blocking, over_ceiling, cfg, answer)


def _refuse(
    request: Request, entry: ModelPrice, cost: int, blocking: list[BudgetView],
    over_ceiling: bool, cfg: PolicyConfig, answer: Callable[..., DecisionRecord],
) -> DecisionRecord:
    blocking = [v if v.whole is None else v.whole for v in blocking]  # a global budget
    if blocking:
        spent = [v for v in blocking if v.exhausted(cfg.exhausted_below)]
        if spent:
            view = max(spent, key=lambda v: v.seconds_until_fits(cost)[0] or 0.0)
            wait, _ = view.seconds_until_fits(cost)
            return answer(Action.THROTTLE, "budget_exhausted",
                          f"budget {view.budget.key} is spent (${view.spent_usd:.6f} of "
                          f"${view.budget.limit_usd:g})", cost=cost, view=view, retry=wait)
        view = blocking[0]
        wait, basis = view.seconds_until_fits(cost)
        retry = cfg.reservation_retry_s if basis == "reservations" else wait
        return answer(Action.REJECT, "over_budget",
                      f"estimated ${usd(cost):.6f} exceeds the ${view.remaining_usd:.6f} left "
                      f"in {view.budget.key} and no cheaper model or provider fits",
                      cost=cost, view=view, retry=retry)
    if over_ceiling:
        return answer(Action.REJECT, "over_cost_ceiling",
                      f"estimated ${usd(cost):.6f} at {entry.model} exceeds max_cost_usd "
                      f"{request.max_cost_usd} and no model meeting the constraints is cheaper",
                      cost=cost)
    return answer(Action.REJECT, "provider_unavailable",
                  f"{entry.provider} is unavailable for {entry.model} and no alternative fits",
                  cost=cost)
