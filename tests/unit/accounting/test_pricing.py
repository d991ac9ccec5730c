import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prsm_events.accounting.catalog import Catalog
from prsm_events.accounting.pricing import price_usage, price_usages
from prsm_events.errors import CatalogError, InvalidEvent
from prsm_events.events.usage import UsageEvent

CAT = Catalog.shipped()


def usage(**kw):
    base = {"event_id": "e", "ts": "2026-01-01T00:00:00Z", "tenant": "t", "service": "s"}
    return UsageEvent.model_validate({**base, **kw})


def test_shipped_catalog_covers_four_providers_with_dates():
    assert len({e.provider for e in CAT.entries}) >= 4
    assert CAT.prices_read_on
    assert all(0 <= e.quality <= 1 for e in CAT.entries)


@pytest.mark.parametrize(
    ("model", "tokens", "expected"),
    [
        # 1M input at $2.50 + 1M output at $10
        ("gpt-4o", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, 12.5),
        # cached input at the cached rate: 0.5M plain x 2.5 + 0.5M cached x 1.25
        ("gpt-4o", {"input_tokens": 1_000_000, "cached_input_tokens": 500_000}, 1.875),
        # Anthropic cache writes at 1.25x input: 1M writes x 3.75
        ("claude-sonnet-4", {"input_tokens": 1_000_000, "cache_write_input_tokens": 1_000_000},
         3.75),
        # reasoning reported apart from output is billed as output
        ("gemini-2.5-flash", {"output_tokens": 500_000, "reasoning_tokens": 500_000}, 2.5),
        # no cached rate in the catalog: billed at the input rate
        ("mistral-small-latest", {"input_tokens": 1_000_000, "cached_input_tokens": 1_000_000},
         0.1),
    ],
)
def test_cost_is_tokens_times_price(model, tokens, expected):
    priced = price_usage(usage(model=model, **tokens), CAT)
    assert priced.cost_usd == pytest.approx(expected)
    assert priced.priced_by == f"catalog:{CAT.version}"


def test_client_cost_wins_and_is_marked():
    priced = price_usage(usage(model="gpt-4o", input_tokens=10, cost_usd=0.42), CAT)
    assert (priced.cost_usd, priced.priced_by, priced.provider) == (0.42, "client", "openai")


def test_non_token_cost_needs_no_model():
    priced = price_usage(usage(kind="compute", cost_usd=1.5), CAT)
    assert priced.cost_usd == 1.5


def test_unknown_model_without_cost_is_rejected():
    with pytest.raises(InvalidEvent) as info:
        price_usage(usage(model="mystery-9000", input_tokens=1), CAT)
    assert info.value.code == "unknown_model"


def test_llm_event_without_model_or_cost_is_rejected():
    with pytest.raises(InvalidEvent) as info:
        price_usage(usage(input_tokens=1), CAT)
    assert info.value.code == "missing_cost"


def test_lookup_by_alias_snapshot_and_provider():
    assert CAT.lookup("claude-sonnet-4-20250514").model == "claude-sonnet-4"
    assert CAT.lookup("gpt-4.1-mini-2025-04-14").model == "gpt-4.1-mini"
    assert CAT.lookup("gpt-4o", provider="anthropic") is None


def test_malformed_catalog_is_a_clear_error():
    with pytest.raises(CatalogError, match="invalid catalog"):
        Catalog.from_json(b'{"version": "x", "prices_read_on": "today", "models": []}')


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from([None, "gpt-4o", "claude-sonnet-4", "claude-sonnet-4-20250514",
                     "mistral-small-latest", "mystery-9000"]),
    st.sampled_from([None, "openai", "anthropic", "azure"]),
    st.sampled_from([None, 0.0, 0.42]),
    st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**6)), max_size=30))
def test_a_batch_is_priced_as_each_event_alone(specs):
    """``price_usages`` looks each (model, provider) up once for the batch: every event gets
    the figures (or the refusal) it gets priced alone, whatever else the batch holds."""
    events = [usage(model=model, provider=provider, cost_usd=cost,
                    kind="llm" if model or cost is None else "compute", input_tokens=tokens,
                    cached_input_tokens=tokens // 3, output_tokens=out,
                    reasoning_tokens=reasoning)
              for model, provider, cost, tokens, out, reasoning in specs]
    together = price_usages(events, CAT)
    for event, priced in zip(events, together, strict=True):
        [alone] = price_usages([event], CAT)
        if isinstance(alone, InvalidEvent):
            assert (type(priced), priced.code, priced.reason) == (
                InvalidEvent, alone.code, alone.reason)
            with pytest.raises(InvalidEvent, match=alone.code):
                price_usage(event, CAT)
        else:
            assert priced == alone == price_usage(event, CAT)
            entry = CAT.lookup(event.model, event.provider) if event.model else None
            if event.cost_usd is None:
                assert priced.cost_usd == entry.cost(
                    input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                    cached_input_tokens=event.cached_input_tokens,
                    reasoning_tokens=event.reasoning_tokens)
                assert priced.priced_by == CAT.priced_by
            assert priced.provider == (event.provider or (entry.provider if entry else ""))
            assert priced.at == event.ts.timestamp()
