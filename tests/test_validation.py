"""Physics validation of the all-atom reference (slow: run with ``pytest -m slow``).

3-methylpentane at 298.15 K and 1 bar with 216 molecules: the OPLS-AA density lies within 2 % of
the liquid's density (OPLS-AA was parametrised to reproduce the densities of liquid alkanes; the
reference value is the experimental one kept in the molecule library with its source), g(r) of the
centres of mass goes to 1 at long range, and D comes with an error and its fit window.
"""

from __future__ import annotations

import pytest

from cgforge.molecules.library import reference_density
from cgforge.workflows.aa import AAConfig, default_protocol, run_aa

pytestmark = pytest.mark.slow


def test_3_methylpentane_density_structure_and_diffusion(tmp_path):
    protocol = default_protocol(200.0, 200.0, seed=11)
    config = AAConfig(molecule="3-methylpentane", n_molecules=216, protocol=protocol)
    summary = run_aa(config, tmp_path / "3mp")
    rho_ref = reference_density("3-methylpentane")
    assert summary["density_g_cm3"] == pytest.approx(rho_ref, rel=0.02)
    assert summary["rdf_long_range_mean"] == pytest.approx(1.0, abs=0.05)
    assert summary["diffusion_err_m2_s"] > 0
    assert summary["diffusion_err_m2_s"] < 0.3 * summary["diffusion_m2_s"]
    start, end = summary["diffusion_fit_window_ps"]
    assert 0 < start < end <= 200.0
    # liquid alkanes near room temperature diffuse at a few 1e-9 m^2/s
    assert 1e-9 < summary["diffusion_m2_s"] < 2e-8
