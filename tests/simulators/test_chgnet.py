"""The CHGNet oracle: energies of a 5-atom SrTiO3 cell, formation energies from references,
and clear refusals of unserved outcomes, bad options and bad structures."""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Any

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

import loop.simulators.chgnet
from loop.errors import LoopError
from loop.simulators import make_simulator
from loop.simulators.chgnet import CHGNetSimulator, _load_chgnet, load_chgnet
from loop.spec import CampaignSpec, parse_spec

HAVE_CHGNET = importlib.util.find_spec("chgnet") is not None
needs_chgnet = pytest.mark.skipif(
    not HAVE_CHGNET, reason="chgnet is not installed (pip install 'loop-planner[chgnet]')"
)
pytestmark = pytest.mark.filterwarnings(
    # chgnet's own stress code; nothing this simulator can change
    "ignore:Converting a tensor with requires_grad=True to a scalar:UserWarning"
)

RNG = np.random.default_rng(0)
REFS = {"Sr": -1.6, "Ti": -7.8, "O": -4.9}


def _perovskite(a: float = 3.9) -> Structure:
    return Structure.from_spacegroup(
        "Pm-3m", Lattice.cubic(a), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0]]
    )


def _params(structure: Structure) -> dict[str, Any]:
    return {
        "structure": 0,
        "id": "s0",
        "formula": structure.composition.reduced_formula,
        "cif": structure.to(fmt="cif"),
    }


def _spec(objectives: list[str], options: dict[str, Any], structures: bool = True) -> CampaignSpec:
    raw: dict[str, Any] = {
        "name": "perov",
        "budget": 5,
        "objectives": [{"name": n, "direction": "minimize"} for n in objectives],
        "simulator": {"name": "chgnet", "options": options},
    }
    if structures:
        raw["structures"] = {"path": "pool.csv"}
    else:
        raw["parameters"] = [{"type": "float", "name": "x", "low": 0, "high": 1}]
    return parse_spec(raw)


@pytest.fixture(scope="module")
def static() -> CHGNetSimulator:
    if not HAVE_CHGNET:
        pytest.skip("chgnet is not installed (pip install 'loop-planner[chgnet]')")
    return CHGNetSimulator.from_options({})


def test_registered_under_its_name() -> None:
    assert loop.simulators.base.SIMULATORS["chgnet"] is CHGNetSimulator


@needs_chgnet
def test_static_energy_is_finite_and_plausible(static: CHGNetSimulator) -> None:
    values = static.measure(_params(_perovskite()), RNG)
    assert set(values) == {"energy_per_atom", "energy"}
    e = values["energy_per_atom"]
    # DFT (PBE) puts cubic SrTiO3 near -8.4 eV/atom; CHGNet is fitted to such energies
    assert math.isfinite(e) and -9.5 < e < -7.5
    assert values["energy"] == pytest.approx(5 * e, rel=1e-9)
    # deterministic: the same structure gives the same energy
    assert static.measure(_params(_perovskite()), RNG)["energy_per_atom"] == e


@needs_chgnet
def test_relax_with_a_tiny_budget_lowers_the_energy(static: CHGNetSimulator) -> None:
    strained = _perovskite(4.1)
    relax = CHGNetSimulator.from_options({"mode": "relax", "steps": 2, "fmax": 0.01})
    relaxed = relax.measure(_params(strained), RNG)["energy_per_atom"]
    unrelaxed = static.measure(_params(strained), RNG)["energy_per_atom"]
    assert math.isfinite(relaxed) and relaxed < unrelaxed
    assert relax._model is load_chgnet()  # the model is loaded once per process


@needs_chgnet
def test_formation_energy_is_energy_minus_weighted_references(static: CHGNetSimulator) -> None:
    spec = _spec(["stability"], {"outputs": {"stability": "formation_energy_per_atom"}})
    sim = CHGNetSimulator.from_options(
        {"references": REFS, "outputs": {"stability": "formation_energy_per_atom"}}, spec=spec
    )
    e = static.measure(_params(_perovskite()), RNG)["energy_per_atom"]
    expected = e - (REFS["Sr"] + REFS["Ti"] + 3 * REFS["O"]) / 5
    assert sim.measure(_params(_perovskite()), RNG) == {"stability": pytest.approx(expected)}


@needs_chgnet
def test_outcomes_named_like_quantities_are_served_through_the_registry() -> None:
    sim = make_simulator(_spec(["energy_per_atom"], {"mode": "static"}))
    values = sim.measure(_params(_perovskite()), RNG)
    assert list(values) == ["energy_per_atom"] and math.isfinite(values["energy_per_atom"])


@pytest.mark.parametrize(
    ("objectives", "options", "expected"),
    [
        (["band_gap"], {}, "cannot answer ['band_gap']"),
        (["stability"], {"outputs": {"stability": "volume"}}, "computes only"),
        (["formation_energy_per_atom"], {}, "cannot answer ['formation_energy_per_atom']"),
        (["energy"], {"outputs": {"enrgy": "energy"}}, "not objectives or constraints"),
        (["energy"], {"mode": "md"}, "mode = 'md' is not known"),
        (["energy"], {"temperature": 300}, "unknown chgnet simulator option(s) ['temperature']"),
    ],
)
def test_refuses_options_that_do_not_serve_the_campaign(
    objectives: list[str], options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(LoopError) as err:
        make_simulator(_spec(objectives, options))
    assert expected in err.value.message and err.value.hint


def test_refuses_a_campaign_without_structures() -> None:
    with pytest.raises(LoopError, match=r"no \[structures\] pool"):
        make_simulator(_spec(["energy"], {}, structures=False))


def test_refuses_formation_energy_without_references() -> None:
    with pytest.raises(LoopError) as err:
        CHGNetSimulator.from_options({"outputs": {"e_f": "formation_energy_per_atom"}})
    assert "no elemental reference energies" in err.value.message
    assert "references" in err.value.hint


def test_missing_chgnet_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chgnet", None)
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    _load_chgnet.cache_clear()
    with pytest.raises(LoopError) as err:
        CHGNetSimulator.from_options({})
    assert "chgnet package" in err.value.message
    assert err.value.hint == "pip install 'loop-planner[chgnet]'"


@needs_chgnet
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"id": "x", "cif": "data_broken\n_cell_length_a 3.9\n"}, "cannot be read"),
        ({"id": "x", "cif": "   "}, "needs the structure's CIF text"),
        ({"id": "x", "structure": 3}, "has no cif"),
    ],
)
def test_refuses_a_bad_cif(static: CHGNetSimulator, params: dict[str, Any], expected: str) -> None:
    with pytest.raises(LoopError) as err:
        static.measure(params, RNG)
    assert expected in err.value.message and "'x'" in err.value.message and err.value.hint


@needs_chgnet
def test_refuses_a_disordered_structure(static: CHGNetSimulator) -> None:
    alloy = _perovskite()
    alloy.replace(0, {"Sr": 0.5, "Ba": 0.5})
    with pytest.raises(LoopError, match="is disordered"):
        static.measure(_params(alloy), RNG)


@needs_chgnet
def test_refuses_an_isolated_atom(static: CHGNetSimulator) -> None:
    lone = Structure(Lattice.cubic(10.0), ["Fe"], [[0, 0, 0]])
    with pytest.raises(LoopError, match="CHGNet cannot evaluate structure 's0' \\(Fe\\)"):
        static.measure(_params(lone), RNG)


@needs_chgnet
def test_formation_energy_needs_every_element_referenced() -> None:
    sim = CHGNetSimulator.from_options(
        {"references": {"Sr": -1.6, "Ti": -7.8}, "outputs": ["formation_energy_per_atom"]}
    )
    with pytest.raises(LoopError, match=r"no reference energy for \['O'\]"):
        sim.measure(_params(_perovskite()), RNG)
