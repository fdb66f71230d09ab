"""User-facing errors.

Every problem a user can cause (bad input, missing files, impossible requests) raises
:class:`CGForgeError` with a message that names the problem and, where possible, the fix.
The command line prints such errors as one line and exits non-zero; anything else is a bug.
:func:`require_positive` is the one check of a positive number.
"""

from __future__ import annotations

import math
from typing import Any


class CGForgeError(Exception):
    """An error caused by input or environment, with a message meant for the user."""


class InputError(CGForgeError, ValueError):
    """Invalid user input: a value, a file or a combination of options."""


class SimulationError(CGForgeError, RuntimeError):
    """A simulation failed in a way the user can act on (blow-up, NaN energy, unstable system)."""


def require_positive(value: Any, what: str) -> float:
    """``value`` as a finite positive float, else an :class:`InputError` that names ``what``.

    ``what`` names the quantity with its unit or flag (``"time step (fs)"``, ``"--mass (amu)"``);
    the message says it must be positive and shows the value given.
    """
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be a positive number, got {value!r}") from exc
    if not (math.isfinite(number) and number > 0.0):
        raise InputError(f"{what} must be positive, got {value!r}")
    return number
