"""What every test shares: Hypothesis never times an example.

Hypothesis fails an example that runs longer than its ``deadline`` (200 ms by default). On a
loaded two-core CI machine a NumPy-heavy example can take that long, and the test would fail
for the machine's load, not for what it asserts: timing belongs in the benchmarks.
"""

from hypothesis import settings

settings.register_profile("prsm", deadline=None)
settings.load_profile("prsm")
