"""Budget scopes: who a budget applies to, and which scopes a request or usage event falls in.

Scopes nest under a tenant: ``global``, ``tenant:acme``, and one level below a tenant
``tenant:acme/team:ml``, ``tenant:acme/service:chat``, ``tenant:acme/api_key:k1``,
``tenant:acme/model:gpt-4o``.

>>> str(Scope.parse("tenant:acme/service:chat"))
'tenant:acme/service:chat'
>>> scopes_of("acme", service="chat", model="gpt-4o")
['global', 'tenant:acme', 'tenant:acme/service:chat', 'tenant:acme/model:gpt-4o']
>>> Scope.parse("tenant:acme/region:eu")
Traceback (most recent call last):
...
ValueError: scope 'tenant:acme/region:eu': below a tenant use one of team, service, api_key, model
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GLOBAL", "SCOPE_ID_PATTERN", "SUB_KINDS", "Scope", "scopes_of", "tenant_of"]

GLOBAL = "global"
SUB_KINDS = ("team", "service", "api_key", "model")
SCOPE_ID_PATTERN = r"^[\x21\x22\x24-\x2e\x30-\x39\x3b-\x7b\x7d\x7e]{1,128}$"
"""An id that can appear in a scope (tenant, team, ...): 1-128 characters of printable ASCII
except '/', ':', '|' and '#' (the scope and key separators)."""
_ID = re.compile(SCOPE_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Scope:
    """A parsed scope; ``tenant`` is None only for ``global``."""

    tenant: str | None = None
    kind: str | None = None
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        if text == GLOBAL:
            return cls()
        head, _, rest = text.partition("/")
        name, sep, tenant = head.partition(":")
        if name != "tenant" or not sep or not _ID.match(tenant):
            raise ValueError(f"scope {text!r}: expected 'global' or 'tenant:<id>[/<kind>:<id>]'")
        if not rest:
            return cls(tenant)
        kind, sep, value = rest.partition(":")
        if kind not in SUB_KINDS:
            raise ValueError(f"scope {text!r}: below a tenant use one of {', '.join(SUB_KINDS)}")
        if not sep or not _ID.match(value):
            raise ValueError(f"scope {text!r}: '{kind}' needs an id without spaces, '/', ':'")
        return cls(tenant, kind, value)

    def __str__(self) -> str:
        if self.tenant is None:
            return GLOBAL
        base = f"tenant:{self.tenant}"
        return base if self.kind is None else f"{base}/{self.kind}:{self.value}"


def scopes_of(
    tenant: str,
    *,
    team: str | None = None,
    service: str | None = None,
    api_key_id: str | None = None,
    model: str | None = None,
) -> list[str]:
    """Every scope an event of this tenant/team/service/key/model counts against."""
    out = [GLOBAL, f"tenant:{tenant}"]
    for kind, value in (("team", team), ("service", service), ("api_key", api_key_id),
                        ("model", model)):
        if value:
            out.append(f"tenant:{tenant}/{kind}:{value}")
    return out


def tenant_of(scope: str) -> str | None:
    """The tenant of a valid scope (None: ``global``), without parsing it whole.

    >>> tenant_of("tenant:acme/model:gpt-4o"), tenant_of("tenant:acme"), tenant_of(GLOBAL)
    ('acme', 'acme', None)
    """
    if not scope.startswith("tenant:"):
        return None
    return scope.partition("/")[0][len("tenant:"):]
