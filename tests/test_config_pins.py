"""Pins of the hash-bearing settings: ``IBIConfig.to_dict()`` of the default configuration and
of the ``quick`` and ``tiny`` presets, the MD protocols IBI builds from a configuration, and
the keys of stage-B and stage-C plans for fixed parents and seeds.

Run directories resume by the hash of these dicts and a database keys its records' specs on
them, so a refactoring must leave them byte-identical (values and key order). The pinned
values were computed from the code as it was before ``IBIConfig.md_settings`` and the shared
planner prologue existed. Cost: well under a second.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from types import SimpleNamespace

import pytest

from cgforge.database.plan import order_parents, plan_stage_a, plan_stage_b, plan_stage_c
from cgforge.database.store import Record, spec_key
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import InputError
from cgforge.methods.ibi import MD_SETTINGS, IBIConfig
from cgforge.presets import PRESETS
from cgforge.workflows.cg import ibi_production_protocol

_COMMON_HEAD = {
    "rdf_tolerance": 0.01,
    "pressure_tolerance_bar": 25.0,
    "pressure_sigmas": 2.0,
    "pressure_correction": True,
    "pressure_scale_bar": None,
    "pressure_max_kT": 0.2,
    "cutoff_nm": None,
    "bin_width_nm": None,
    "switch_width_nm": 0.1,
    "g_min": 0.01,
    "smoothing_window": 5,
    "timestep_fs": 5.0,
}
_COMMON_TAIL = {
    "sample_interval_ps": 0.5,
    "thermo_interval_ps": 0.1,
    "checkpoint_interval_ps": 20.0,
    "platform": "auto",
    "seed": 0,
    "keep_md": False,
}

IBI_DICTS = {
    "default": {
        "max_iterations": 30,
        "damping": 0.8,
        **_COMMON_HEAD,
        "equilibration_ps": 10.0,
        "production_ps": 100.0,
        **_COMMON_TAIL,
    },
    "quick": {
        "max_iterations": 30,
        "damping": 1.0,
        **_COMMON_HEAD,
        "equilibration_ps": 5.0,
        "production_ps": 50.0,
        **_COMMON_TAIL,
        "patience": 6,
        "bin_noise_fraction": 0.5,
        "smoothing_nm": 0.03,
    },
    "tiny": {
        "max_iterations": 1,
        "damping": 0.8,
        **_COMMON_HEAD,
        "equilibration_ps": 1.0,
        "production_ps": 4.0,
        **_COMMON_TAIL,
    },
}


def _sha256(data: dict) -> str:
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


@pytest.mark.parametrize("name", ["default", "quick", "tiny"])
def test_ibi_config_to_dict_is_pinned(name):
    config = IBIConfig() if name == "default" else PRESETS[name].ibi
    out = config.to_dict()
    assert list(out.items()) == list(IBI_DICTS[name].items())  # values and key order
    assert json.dumps(out) == json.dumps(IBI_DICTS[name])


def test_ibi_md_protocols_are_pinned():
    """The iteration protocols and the production protocol after IBI keep their dicts."""
    config = IBIConfig(timestep_fs=4.0, platform="cpu", seed=5, engine="lammps", cg_threads=2)
    ref = SimpleNamespace(temperature_K=310.0, barostat_pressure_bar=2.0)
    protocols = {
        "iteration 0": config.protocol(300.0, 0),
        "iteration 3": config.protocol(300.0, 3),
        "quick iteration 1": PRESETS["quick"].ibi.protocol(298.15, 1),
        "production": ibi_production_protocol(
            ref, config, equilibration_ps=20.0, production_ps=100.0
        ),
        "tiny production": ibi_production_protocol(ref, PRESETS["tiny"].ibi),
    }
    assert {name: _sha256(p.to_dict()) for name, p in protocols.items()} == {
        "iteration 0": "d0aa738707958fe7484bfe33585fd9408c8a3e1cb6da9f4fc236fd55e14a0a1e",
        "iteration 3": "9c061073cf67f95c2d543f097f8c988777282783d69ccd65a948cb928d129d0e",
        "quick iteration 1": "c69a56f2218fcf06a35cd952289d9d7a7a456b0b5916cc47f1b2779bcc6446ee",
        "production": "6a66c636500a3af970b9e8994b1277e3006ee4d9a9c1ad2aca6c4357de822e78",
        "tiny production": "9434ca591811793a577517ec8173b60ef9168446417f22e900a9b9e13b704472",
    }
    first = protocols["iteration 0"]
    assert (first.minimize, first.seed, first.production_ps) == (True, 5, 110.0)
    assert (first.engine, first.cg_threads, first.platform) == ("lammps", 2, "cpu")
    assert protocols["iteration 3"].seed == 8 and not protocols["iteration 3"].minimize


def test_md_settings_pass_to_every_protocol_of_a_config():
    """MD_SETTINGS name fields of both IBIConfig and MDProtocol; md_protocol takes them over
    and lets its keywords replace them."""
    assert set(MD_SETTINGS) <= {f.name for f in fields(IBIConfig)}
    assert set(MD_SETTINGS) <= {f.name for f in fields(MDProtocol)}
    config = IBIConfig(timestep_fs=4.0, platform="cpu", seed=5, engine="torch", cg_threads=3)
    assert config.md_settings() == {
        "timestep_fs": 4.0,
        "platform": "cpu",
        "seed": 5,
        "engine": "torch",
        "cg_threads": 3,
    }
    ref = SimpleNamespace(temperature_K=310.0, barostat_pressure_bar=2.0)
    for protocol in (
        config.md_protocol(300.0),
        config.protocol(300.0, 0),
        ibi_production_protocol(ref, config),
    ):
        for name, value in config.md_settings().items():
            assert getattr(protocol, name) == value, name
    assert config.md_protocol(300.0, seed=9, production_ps=7.0).seed == 9
    assert config.protocol(300.0, 2).seed == 7


PARENT_KEYS = [
    "38a54408e165a8055ef9149bf60c87402399003325f97d15aecef84396cfdbbd",
    "476b5e2b270a3dec4389f35bc61f131fb581801adf397764aef6c0e4b5248712",
    "e13e5c5b127569d2364f6cd0896c9ff6a351fe45384d92b4f9ea1d971ad0b67f",
]
PLAN_KEYS = {
    ("quick", "B"): [
        "1936799f445dd2e0985e7d024e0c6c083898f42f19316906cacd41930b47f5a0",
        "0fba2d3246bb9c3c32bebb435b9c7bee534ad131957387a7c820cb53f788f7ed",
        "f9ef91fc34c623a881ea0d6c79325051f01d0dd0eb784c5c10ec61ccf8c6259c",
        "7d1e16343803acafcb44b4813850b5d642de323d632558f6b0a24585ba4c8f08",
        "2fb93c7c4f8351adda565124f84f3856ec36d0c565ae3fd9a460667824edae27",
    ],
    ("quick", "C"): [
        "f2edf83dca1ec91d6474ee1cadcd9086ab0daf2d567c3f168b72e6afcafbd59f",
        "d1aff1cf87504e1b1439be90abecff639ccc15ceafb3fae513425764b1d601ad",
        "d7952fdd3b4eaf5544562d31ac548c5560fa8c3e6ff77c2964eb2fb13756cacf",
        "39bfefdd1d8182251cebf62126bb60081ce373611fd53c169e7139f63dab009e",
        "769892b19c74f25fa6b55d571399f8a0766067d20aac44a521280da0bd010c73",
    ],
    ("tiny", "B"): [
        "ab61af99805ed5042a508d74a24ab6d2fcdfde967679485f9d0bd2f3f0d14b7a",
        "74d79bafd27d8a8084ed38bc63b27e8e9c4604539fb94a5e264026462fb06682",
        "2f009aece59504896caf74b17d9431e00c76a7ae8e277aff0660b3a728a43868",
        "75df32402229f003c63c3fa13136de20eb0c6139f747f6f97aca2d992ae223b8",
        "3b328a7da4f98b466ef3348ec3c33806a1c068e2e44008a41efc9b7d95970872",
    ],
    ("tiny", "C"): [
        "8cdede70b4836e38453eb9606c7095c0f036212a66ebc8ff01818c5dabd08bad",
        "706d6dc4a14dca2ae593f9962f8d7e5acd70b91706490bca920bf34390ed5a65",
        "e97ae42d124895f62f5a56112801136a97b82ff1496e1746cacd7aad2aad4ca5",
        "20296106b0333a2be4b8271232bbcee39b96dcb36d58e89d760c42323dfb8659",
        "6771dca76b4b8b04530ffa7f2c4c36a610a570a8a4d089e0cc1dfbdee7632733",
    ],
}


@pytest.fixture(scope="module")
def parents():
    """Three done stage-A records (not simulated: only their specs matter to a plan), in
    the order :func:`order_parents` gives them."""
    plan_a = plan_stage_a(["3-methylpentane", "hexane"], 3, seed=11, preset="tiny")
    records = [
        Record(
            key=spec_key(s),
            stage="A",
            state="done",
            molecule=s["molecule"],
            parent_key=None,
            spec=s,
            scalars={},
        )
        for s in plan_a
    ]
    ordered = order_parents(reversed(records), plan_a)
    assert [p.key for p in ordered] == PARENT_KEYS
    return ordered


@pytest.mark.parametrize("preset", ["quick", "tiny"])
def test_stage_b_and_c_plans_are_pinned(parents, preset):
    b = plan_stage_b(parents, 5, seed=7, mass_range_amu=(30, 150), preset=preset)
    c = plan_stage_c(parents, 5, seed=7, preset=preset)
    assert [spec_key(s) for s in b] == PLAN_KEYS[(preset, "B")]
    assert [spec_key(s) for s in c] == PLAN_KEYS[(preset, "C")]
    for j, spec in enumerate(b + c):
        assert spec["parent_key"] == PARENT_KEYS[j % 5 % 3]  # round robin over the parents
    assert all(30 <= s["mass_amu"] <= 150 for s in b)
    assert all(20 <= s["mass_amu"] <= 200 for s in c)  # the default mass range


def test_stage_b_and_c_plans_check_their_arguments(parents):
    assert plan_stage_b([], 0) == [] and plan_stage_c([], 0) == []
    with pytest.raises(InputError, match="stage B needs done stage-A records"):
        plan_stage_b([], 1, preset="tiny")
    with pytest.raises(InputError, match="stage C perturbs done stage-A records") as info:
        plan_stage_c([], 1, preset="tiny")
    assert info.value.parameters == ("perturbed_runs",)
    for plan in (plan_stage_b, plan_stage_c):
        with pytest.raises(InputError, match="non-negative integer"):
            plan(parents, -1)
        with pytest.raises(InputError, match="inverted"):
            plan(parents, 1, mass_range_amu=(100, 50))
