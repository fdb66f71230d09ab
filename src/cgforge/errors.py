"""User-facing errors.

Every problem a user can cause (bad input, missing files, impossible requests) raises
:class:`CGForgeError` with a message that names the problem and, where possible, the fix.
The command line prints such errors as one line and exits non-zero; anything else is a bug.
"""


class CGForgeError(Exception):
    """An error caused by input or environment, with a message meant for the user."""


class InputError(CGForgeError, ValueError):
    """Invalid user input: a value, a file or a combination of options."""


class SimulationError(CGForgeError, RuntimeError):
    """A simulation failed in a way the user can act on (blow-up, NaN energy, unstable system)."""
