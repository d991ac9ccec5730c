"""``ledger_view.usd``: nano-USD to USD without ``round``, the same float."""

import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from prsm_events.accounting.ledger_view import NANO, usd

NANO_FIGURES = st.one_of(
    st.integers(-10**12, 10**12),  # up to $1,000: most figures
    st.integers(2**51, 2**55),  # about $2M-$36M: a float's step near 10^-9 USD
    st.integers(-2**80, 2**80),  # budgets of any size, past the floats' exact integers
)


@given(NANO_FIGURES)
def test_usd_is_the_float_that_rounding_to_nine_places_gives(nano):
    assert usd(nano) == round(nano / NANO, 9)


@given(NANO_FIGURES)
def test_usd_is_the_float_nearest_the_exact_figure(nano):
    exact = Decimal(nano) / Decimal(NANO)  # nine places at most: exact in 28 digits
    got = usd(nano)
    off = abs(Decimal(got) - exact)
    assert off <= abs(Decimal(math.nextafter(got, math.inf)) - exact)
    assert off <= abs(Decimal(math.nextafter(got, -math.inf)) - exact)
