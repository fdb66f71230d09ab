"""The one positive-number check: a value back as float, or a one-line InputError naming it."""

from __future__ import annotations

import math

import pytest

from cgforge.errors import InputError, require_positive


def test_require_positive_returns_float():
    assert require_positive(2, "time step (fs)") == 2.0
    assert require_positive("0.5", "tau (ps)") == 0.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.0, r"time step \(fs\) must be positive, got 0.0"),
        (-1, r"time step \(fs\) must be positive, got -1"),
        (math.nan, r"time step \(fs\) must be positive, got nan"),
        (math.inf, r"time step \(fs\) must be positive, got inf"),
        ("fast", r"time step \(fs\) must be a positive number, got 'fast'"),
        (None, r"time step \(fs\) must be a positive number, got None"),
    ],
)
def test_require_positive_names_the_quantity(value, message):
    with pytest.raises(InputError, match=message):
        require_positive(value, "time step (fs)")
