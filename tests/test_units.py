import math

import pytest

from cgforge import units
from cgforge.errors import InputError


@pytest.mark.parametrize(
    ("text", "ps"),
    [
        ("2ns", 2000.0),
        ("500ps", 500.0),
        ("1ps", 1.0),
        ("2fs", 0.002),
        ("1.5 ns", 1500.0),
        ("1e-3ns", 1.0),
        ("0ps", 0.0),
        ("3us", 3.0e6),
    ],
)
def test_parse_time(text, ps):
    assert math.isclose(units.parse_time_ps(text), ps, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2", "has no unit"),
        ("-1ps", "non-negative"),
        ("5 hours", "unknown time unit"),
        ("fast", "cannot read"),
        ("nanps", "cannot read"),
    ],
)
def test_parse_time_rejects(text, fragment):
    with pytest.raises(InputError, match=fragment):
        units.parse_time_ps(text)


def test_parse_time_rejects_bare_numbers_and_zero_when_asked():
    with pytest.raises(InputError, match="no unit"):
        units.parse_time_ps(2.0)
    with pytest.raises(InputError, match="positive"):
        units.parse_time_ps("0ns", allow_zero=False)


def test_conversions_match_known_values():
    # 1 kJ/mol/nm^3 = 16.6054 bar; water: 18.015 amu in 0.0299 nm^3 -> 1.0 g/cm^3
    assert math.isclose(units.KJ_MOL_NM3_TO_BAR, 16.6054, rel_tol=1e-4)
    assert math.isclose(units.density_g_cm3(18.015, 0.029915), 1.0, rel_tol=1e-3)
    assert math.isclose(units.kT(300.0), 2.494339, rel_tol=1e-6)
    # OPLS C-C bond: 268 kcal/mol/A^2 -> 112131 kJ/mol/nm^2 (same functional form)
    assert math.isclose(units.kcal_per_A2_to_kj_per_nm2(268.0), 268.0 * 418.4, rel_tol=1e-12)
