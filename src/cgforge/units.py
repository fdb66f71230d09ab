"""The one unit system of cgforge, its constants, and conversions at the boundaries.

Inside cgforge every quantity is in OpenMM's units: length nm, time ps, energy kJ/mol,
temperature K, mass amu (g/mol), charge e, pressure bar. Other units (Å, kcal/mol, LAMMPS
``real``, m²/s, g/cm³) appear only when reading or writing files or in user-facing reports,
and always with the unit in the column name or header.
"""

from __future__ import annotations

import math
import re

from cgforge.errors import InputError

#: Avogadro constant, 1/mol (exact, SI 2019).
AVOGADRO = 6.02214076e23
#: Molar gas constant R = k_B N_A in kJ/(mol K).
KB_KJ_MOL_K = 8.314462618e-3
#: kcal → kJ (thermochemical calorie).
KCAL_TO_KJ = 4.184
#: Å → nm.
ANGSTROM_TO_NM = 0.1
#: amu/nm³ → g/cm³ (1 amu = 1.66053906660e-24 g, 1 nm³ = 1e-21 cm³).
AMU_NM3_TO_G_CM3 = 1.66053906660e-3
#: nm²/ps → m²/s.
NM2_PS_TO_M2_S = 1.0e-6
#: kJ/mol/nm³ → bar (1 kJ/mol/nm³ = 1e3/N_A J / 1e-27 m³ = 16.6054 bar).
KJ_MOL_NM3_TO_BAR = 1.0e3 / AVOGADRO / 1.0e-27 / 1.0e5
#: degree → radian.
DEG_TO_RAD = math.pi / 180.0


def kT(temperature_K: float) -> float:
    """Thermal energy k_B T in kJ/mol."""
    return KB_KJ_MOL_K * temperature_K


def kcal_per_A2_to_kj_per_nm2(value: float) -> float:
    """Convert a force constant from kcal/mol/Å² to kJ/mol/nm² (same functional form)."""
    return value * KCAL_TO_KJ / ANGSTROM_TO_NM**2


def density_g_cm3(total_mass_amu: float, volume_nm3: float) -> float:
    """Mass density in g/cm³ from a mass in amu and a volume in nm³."""
    return total_mass_amu / volume_nm3 * AMU_NM3_TO_G_CM3


_TIME_UNITS_PS = {"fs": 1.0e-3, "ps": 1.0, "ns": 1.0e3, "us": 1.0e6, "µs": 1.0e6}
_TIME_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Zµ]+)\s*$")


def parse_time_ps(text: str | float | int, *, what: str = "time", allow_zero: bool = True) -> float:
    """Parse a time with its unit (``"2ns"``, ``"500 ps"``, ``"1fs"``) into ps.

    A bare number is refused because its unit would be a guess; the hint suggests fs for a
    time step (``what`` naming one) and ps otherwise.
    """
    unit_hint = "fs" if "timestep" in what.replace(" ", "").replace("_", "").lower() else "ps"
    if isinstance(text, int | float):
        raise InputError(
            f"{what} {text!r} has no unit; write it with one, e.g. '{text}{unit_hint}'"
            + ("" if unit_hint == "fs" else f" or '{text}ns'")
        )
    match = _TIME_RE.match(str(text))
    if match is None:
        if re.match(r"^\s*[-+]?[\d.]+(?:[eE][-+]?\d+)?\s*$", str(text)):
            raise InputError(
                f"{what} '{text}' has no unit; write it with one, e.g. '{text.strip()}{unit_hint}'"
            )
        raise InputError(
            f"cannot read {what} '{text}'; write a number with a unit, e.g. '2ns' or '500ps'"
        )
    value, unit = float(match.group(1)), match.group(2)
    if unit not in _TIME_UNITS_PS:
        raise InputError(f"unknown time unit '{unit}' in {what} '{text}'; use fs, ps, ns or us")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise InputError(f"{what} must be {bound}, got '{text}'")
    return value * _TIME_UNITS_PS[unit]


def format_time_ps(t_ps: float) -> str:
    """Human-readable time with a sensible unit."""
    if t_ps >= 1.0e3:
        return f"{t_ps / 1.0e3:g} ns"
    if t_ps >= 1.0:
        return f"{t_ps:g} ps"
    return f"{t_ps * 1.0e3:g} fs"
