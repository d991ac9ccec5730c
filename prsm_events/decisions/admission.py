"""Admission: decide a request against the ledger and reserve what it admits (pure).

>>> from datetime import datetime, UTC
>>> from prsm_events.accounting.budgets import Budget, BudgetBook
>>> from prsm_events.accounting.catalog import Catalog
>>> from prsm_events.accounting.ledger import BudgetLedger
>>> from prsm_events.events.request import RequestEvent
>>> from prsm_events.kafka.partitioning import owner_partition
>>> desk = AdmissionDesk(BudgetBook([Budget(scope="tenant:acme", period="day", limit_usd=0.02)]),
...                      BudgetLedger({}, {}, 4, owner_partition), Catalog.shipped())
>>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
>>> def ask(i):
...     return RequestEvent(request_id=f"r{i}", ts=now, tenant="acme", service="chat",
...                         model="gpt-4o", est_input_tokens=1000, est_output_tokens=500)
>>> [desk.admit(ask(i), now).action.value for i in range(4)]
['allow', 'allow', 'route', 'route']
>>> desk.admit(ask(0), now).reason.code            # a re-delivered request
'already_decided'
>>> desk.ledger.view(desk.book.get("tenant:acme|day"), "acme", now.timestamp()).reserved_usd
... # 2 x $0.0075 at gpt-4o + 2 routed to a cheaper model
0.01664
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from prsm_events.accounting.budgets import Budget, BudgetBook
from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.ledger import BudgetLedger, to_nano
from prsm_events.decisions.pacing import PacingAction
from prsm_events.decisions.policy import DecisionContext, PolicyConfig, decide
from prsm_events.decisions.provider_health import ProviderHealth
from prsm_events.events.decision import Action, DecisionRecord, ReasonRecord
from prsm_events.events.fast_path import Request

__all__ = ["AdmissionDesk"]


class AdmissionDesk:
    """Budgets + ledger + catalog + provider health: requests in, decisions out."""

    def __init__(
        self,
        book: BudgetBook,
        ledger: BudgetLedger,
        catalog: Catalog,
        health: ProviderHealth | None = None,
        config: PolicyConfig | None = None,
        reservation_ttl_s: float = 120.0,
    ) -> None:
        self.book = book
        self.ledger = ledger
        self.catalog = catalog
        self.health = health or ProviderHealth()
        self.config = config or PolicyConfig()
        self.reservation_ttl_s = reservation_ttl_s
        self.pacing: Mapping[str, PacingAction] = {}
        """Pacing actions by budget key, replaced by the scorer at each tick."""
        self.forecasts: Mapping[str, dict[str, object]] = {}
        """Forecast figures by budget key, replaced by the scorer at each tick."""

    def budgets_for(self, request: Request, model: str | None = None) -> Sequence[Budget]:
        return self.book.scoped(request.tenant, team=request.team, service=request.service,
                                api_key_id=request.api_key_id, model=model or request.model)[1]

    def admit(self, request: Request, now: datetime) -> DecisionRecord:
        """Decide ``request``; reserve its estimate in every budget if it is admitted."""
        held = self.ledger.reservation(request.tenant, request.request_id)
        if held is not None:
            return self._again(request, held.decision, now)
        clock = now.timestamp()
        budgets = self.budgets_for(request)
        ledger = self.ledger
        views = [ledger.view(b, request.tenant, clock) if b.tenant is not None
                 else ledger.admission_view(b, request.tenant, clock) for b in budgets]
        ctx = DecisionContext(self.catalog, views,
                              lambda p, m: self.health.availability(p, m, clock),
                              self.config, now, self.pacing, self.forecasts)
        decision = decide(request, ctx)
        if decision.reason.code == "awaiting_allotment" and self.ledger.escrow is not None:
            cost = to_nano(decision.est_cost_usd)
            for view in views:
                if view.room is not None and not view.fits(cost):
                    self.ledger.escrow.ask(view.budget.key, self.ledger.partition_of(
                        request.tenant, self.ledger.partitions), cost)
        if decision.admitted:
            if decision.model != request.model:  # model budgets follow the model called
                budgets = self.budgets_for(request, decision.model)
            if budgets:
                self.ledger.reserve(
                    request.tenant, request.request_id, budgets,
                    to_nano(decision.est_cost_usd), clock, self.reservation_ttl_s,
                    [decision.action.value, decision.model, decision.provider,
                     decision.est_cost_usd])
        return decision

    def _again(self, request: Request, held: list[object], now: datetime) -> DecisionRecord:
        action, model, provider, cost = (held + [None] * 4)[:4]
        return DecisionRecord(
            request_id=request.request_id, ts=now, tenant=request.tenant,
            action=Action(str(action or "allow")), model=str(model) if model else None,
            provider=str(provider) if provider else None,
            requested_model=request.model, priority=str(request.priority),
            est_cost_usd=float(str(cost or 0.0)),
            reason=ReasonRecord(code="already_decided",
                                message="this request was admitted before; its reservation "
                                "stands"))
