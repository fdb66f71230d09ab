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


def test_errors_list_the_parameters_they_name():
    assert InputError("plain").parameters == ()
    assert InputError("lengthen production_ps", parameters="production_ps").parameters == (
        "production_ps",
    )
    error = InputError("x", parameters=["out", "overwrite"])
    assert error.parameters == ("out", "overwrite") and str(error) == "x"
    with pytest.raises(InputError, match="mass_amu must be positive") as info:
        require_positive(-1, "mass_amu", parameter="mass_amu")
    assert info.value.parameters == ("mass_amu",)


@pytest.mark.parametrize(
    ("message", "parameters", "command", "shown"),
    [
        ("lengthen production_ps or shorten the sample interval", "production_ps", None,
         "lengthen --production or shorten the sample interval"),
        ("lengthen production_ps", "production_ps", "tradeoff", "lengthen --run"),
        ("out /tmp/out/x is a file", "out", None, "--out /tmp/out/x is a file"),
        ("out out is a file", "out", None, "--out out is a file"),
        ("out a holds a run; use another out or pass overwrite=True", ("out", "overwrite"), None,
         "--out a holds a run; use another --out or pass --overwrite"),
        ("run it with engine='torch'", "engine", None, "run it with --engine torch"),
        ("unknown engine 'engine'", "engine", None, "unknown --engine 'engine'"),
        ("alpha_model[1] must be >= 0", "alpha_model[1]", None, "--alpha-err must be >= 0"),
        ("give mass_amu, not bead_mass_amu or mass_amu.csv", "mass_amu", None,
         "give --mass, not bead_mass_amu or mass_amu.csv"),
        ("out is not listed, so it stays", (), None, "out is not listed, so it stays"),
    ],
)  # fmt: skip
def test_the_command_line_shows_flags_for_parameters(message, parameters, command, shown):
    from cgforge.cli.options import with_flags

    assert with_flags(InputError(message, parameters=parameters), command) == shown


def test_a_library_error_names_the_parameter_and_the_cli_the_flag(tmp_path, capsys):
    from cgforge.cli.main import main
    from cgforge.workflows.export import export_potential

    out = tmp_path / "full"
    out.mkdir()
    (out / "mine.txt").write_text("keep me\n")
    table = tmp_path / "lj.csv"  # refused before it is read
    with pytest.raises(InputError, match="not empty") as info:
        export_potential(table, "csv", out)
    assert f"out {out} is not empty" in str(info.value)
    assert "pass overwrite=True" in str(info.value) and "--" not in str(info.value)
    with pytest.raises(InputError, match=r"^n_beads must be an integer >= 2, got 1$"):
        export_potential(table, "csv", tmp_path / "new", n_beads=1)

    capsys.readouterr()
    assert main(["export", str(table), "--format", "csv", "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--out {out} is not empty" in err and "pass --overwrite" in err, err
    assert "overwrite=True" not in err
    new = tmp_path / "new"
    assert main(["export", str(table), "--format", "csv", "--beads", "1", "--out", str(new)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: --beads must be an integer >= 2, got 1" in err, err
    assert not new.exists()
