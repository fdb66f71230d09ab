"""User-facing errors.

Every problem a user can cause (bad input, missing files, impossible requests) raises
:class:`CGForgeError` with a message that names the problem and, where possible, the fix.
The command line prints such errors as one line and exits non-zero; anything else is a bug.
:func:`require_positive` is the one check of a positive number, :func:`check_settings` the one
check of a settings dataclass's fields.

A message names what to change in Python terms: the parameter (``"lengthen production_ps"``,
``"pass overwrite=True"``), and the error lists the parameters it names in ``parameters``. The
command line shows the same message with its flags instead (``"lengthen --production"``): it
replaces each listed parameter, written bare, as ``name=True`` or as ``name='value'``, by the
flag of its table (:data:`cgforge.cli.options.FLAGS`). So a message that lists a parameter uses
its name for nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class CGForgeError(Exception):
    """An error caused by input or environment, with a message meant for the user.

    ``parameters`` names the library parameters the message mentions (one name or several), for
    the command line to show its flags in their place.
    """

    def __init__(self, *args: object, parameters: str | Iterable[str] = ()) -> None:
        super().__init__(*args)
        self.parameters: tuple[str, ...] = (
            (parameters,) if isinstance(parameters, str) else tuple(parameters)
        )


class InputError(CGForgeError, ValueError):
    """Invalid user input: a value, a file or a combination of options."""


class SimulationError(CGForgeError, RuntimeError):
    """A simulation failed in a way the user can act on (blow-up, NaN energy, unstable system)."""


def require_positive(value: Any, what: str, *, parameter: str | None = None) -> float:
    """``value`` as a finite positive float, else an :class:`InputError` that names ``what``.

    ``what`` names the quantity with its unit or parameter (``"time step (fs)"``,
    ``"mass_amu"``); the message says it must be positive and shows the value given.
    ``parameter``, where ``what`` names one, goes to the error's ``parameters``.
    """
    names = () if parameter is None else (parameter,)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{what} must be a positive number, got {value!r}", parameters=names
        ) from exc
    if not (math.isfinite(number) and number > 0.0):
        raise InputError(f"{what} must be positive, got {value!r}", parameters=names)
    return number


def check_settings(
    settings: object, checks: dict[str, bool], kind: str, *, finite: bool = False
) -> None:
    """An :class:`InputError` ``invalid <kind> setting <name>=<value>`` for the first field of
    ``settings`` whose entry in ``checks`` (field name: whether its value is valid) is False;
    with ``finite``, also for a field holding a non-finite number (numbers other than ints)."""
    for name, ok in checks.items():
        value = getattr(settings, name)
        if ok and finite:
            ok = isinstance(value, bool | int | str) or value is None or math.isfinite(value)
        if not ok:
            raise InputError(f"invalid {kind} setting {name}={value!r}")
