"""Chemical spaces: lazy enumeration, closed-form counts, the charge-balance filter, and
composition campaigns (pool creation, ingest by formula or element columns, propose)."""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from db import Store, crud, open_store
from loop.campaigns import composition_pool, create_campaign, create_campaign_from_spec
from loop.chemspace import (
    ChemicalSpace,
    count_compositions,
    formula,
    grid_units,
    is_charge_balanced,
    oxidation_states,
)
from loop.engine import propose
from loop.errors import IngestError, SpecError
from loop.ingest import ingest_rows, read_rows
from loop.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
LI_TM = ROOT / "examples" / "compositions" / "li_tm_oxides.toml"


# -- enumeration and counts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elements", "step", "kmin", "kmax"),
    [
        (("Fe", "O"), 0.5, 1, None),
        (("Li", "Fe", "O"), 0.1, 1, None),
        (("Li", "Fe", "Mn", "Ni", "O"), 0.05, 2, 4),
        (("Li", "Fe", "Mn", "Ni", "O"), 0.25, 1, 5),  # 5 components need 5 units: 4 cannot
        (("Li", "Fe", "Mn", "Ni", "Co", "O"), 0.125, 3, 3),
        (("Cu", "Zn"), 1.0, 1, 2),  # one unit: the pure elements only
    ],
)
def test_enumeration_matches_the_closed_form(
    elements: tuple[str, ...], step: float, kmin: int, kmax: int | None
) -> None:
    space = ChemicalSpace(elements, step=step, min_components=kmin, max_components=kmax)
    rows = list(space)
    units = grid_units(step)
    hi = len(elements) if kmax is None else kmax
    assert len(rows) == space.count
    if (units + 1) ** len(elements) <= 200_000:  # the same count by brute force
        brute = sum(
            1
            for v in itertools.product(range(units + 1), repeat=len(elements))
            if sum(v) == units and kmin <= sum(x > 0 for x in v) <= hi
        )
        assert space.count == brute
    assert space.count == count_compositions(len(elements), units, kmin, kmax)
    assert len({key for key, _ in rows}) == len(rows), "keys are unique"
    for _key, fr in rows:
        assert list(fr) == list(elements)
        assert math.isclose(sum(fr.values()), 1.0, abs_tol=1e-12)
        assert kmin <= sum(v > 0 for v in fr.values()) <= hi
        assert all(math.isclose(v * units, round(v * units), abs_tol=1e-9) for v in fr.values())


def test_count_compositions_by_hand() -> None:
    # 3 binaries x 9 splits + 1 ternary subset x C(9, 2) splits on a 0.1 grid
    assert count_compositions(3, 10, 2, 3) == 3 * 9 + 36
    assert count_compositions(5, 20, 2, 4) == 10 * 19 + 10 * 171 + 5 * 969
    assert count_compositions(3, 2, 3, 3) == 0  # 2 units cannot be shared among 3 elements


def test_candidates_are_clean_fractions_over_every_element() -> None:
    rows = dict(ChemicalSpace(("Li", "Fe", "O"), step=0.05))
    fr = rows["Li0.15Fe0.35O0.5"]
    assert fr == {"Li": 0.15, "Fe": 0.35, "O": 0.5}  # not 0.15000000000000002
    assert rows["Fe0.4O0.6"] == {"Li": 0.0, "Fe": 0.4, "O": 0.6}
    assert rows["O1"] == {"Li": 0.0, "Fe": 0.0, "O": 1.0}
    assert formula({"Li": 0.25, "Fe": 0.25, "Mn": 0.0, "O": 0.5}) == "Li0.25Fe0.25O0.5"


def test_enumeration_is_lazy() -> None:
    els = tuple("H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca".split())
    space = ChemicalSpace(els, step=0.01, min_components=1, max_components=4)
    expected = 20 + math.comb(20, 2) * 99 + math.comb(20, 3) * math.comb(99, 2)
    expected += math.comb(20, 4) * math.comb(99, 3)
    assert space.count == expected > 10_000_000
    it = iter(space)
    assert inspect.isgenerator(it)
    first = list(itertools.islice(it, 1000))  # would take minutes if the space were built
    assert first[0] == ("H1", {el: float(el == "H") for el in els})
    assert len(first) == 1000


def test_step_must_divide_one() -> None:
    assert grid_units(0.05) == 20 and grid_units(0.1) == 10 and grid_units(1 / 3) == 3
    with pytest.raises(ValueError, match=r"step 0.03 does not divide 1 .*0.025 \(40 units\)"):
        grid_units(0.03)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="step must be a fraction in"):
            grid_units(bad)
    with pytest.raises(ValueError, match="does not divide 1"):
        ChemicalSpace(("Fe", "O"), step=0.3)


def test_components_are_checked() -> None:
    with pytest.raises(ValueError, match="min_components <= max_components <= 2"):
        ChemicalSpace(("Fe", "O"), min_components=2, max_components=3)
    with pytest.raises(ValueError, match="min_components=3, max_components=2"):
        ChemicalSpace(("Li", "Fe", "O"), min_components=3, max_components=2)
    with pytest.raises(ValueError, match="more than once"):
        ChemicalSpace(("Fe", "O", "Fe"))


# -- charge balance -----------------------------------------------------------------------------


def test_charge_balance_filter_keeps_balanced_oxides() -> None:
    kept = dict(ChemicalSpace(("Li", "Fe", "O"), step=0.05, charge_balanced=True))
    assert "Fe0.4O0.6" in kept  # Fe2O3
    assert "Fe0.5O0.5" in kept  # FeO (Fe2+)
    assert "Li0.25Fe0.25O0.5" in kept  # LiFeO2
    assert "Fe0.25O0.75" not in kept  # FeO3
    assert "Li0.5Fe0.5" not in kept  # an intermetallic has no balancing oxidation states
    assert "Fe1" in kept  # one element alone is neutral, as pymatgen says
    assert len(kept) < ChemicalSpace(("Li", "Fe", "O"), step=0.05).count


def test_charge_balance_reduces_the_formula_first() -> None:
    # Li2Mn2O6 could balance with Mn3+ + Mn7+, but the formula is LiMnO3 (needs Mn5+)
    assert is_charge_balanced({"Li": 2, "Mn": 2, "O": 6}) is False
    assert is_charge_balanced({"Fe": 8, "O": 12}) is True  # Fe2O3
    assert is_charge_balanced({"Fe": 3, "O": 4}) is True  # mixed valence Fe2+/Fe3+
    assert is_charge_balanced({"Ne": 1, "O": 1}) is False  # Ne has no oxidation states
    assert oxidation_states("O") == (-2,)


@pytest.mark.filterwarnings("ignore:No Pauling electronegativity")
def test_charge_balance_agrees_with_pymatgen() -> None:
    from pymatgen.core import Composition

    space = ChemicalSpace(("Li", "Fe", "Mn", "Ne", "O", "F"), step=0.2)
    units = list(space.unit_compositions())
    assert len(units) == space.count
    ours = [is_charge_balanced(a) for a in units]
    theirs = [bool(Composition(a).oxi_state_guesses(max_sites=-1)) for a in units]
    assert ours == theirs
    assert 0 < sum(ours) < len(ours)


# -- composition campaigns ----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'loop.db'}", artifact_dir=tmp_path / "artifacts")
    yield s
    s.dispose()


def _spec(**comp: Any) -> Any:
    raw = {
        "name": "oxides",
        "budget": 12,
        "batch_size": 3,
        "initial_design": 3,
        "objectives": [{"name": "energy", "direction": "minimize"}],
        "compositions": {"elements": ["Li", "Fe", "Mn", "O"], "step": 0.1, **comp},
    }
    return parse_spec(raw)


def _candidates(store: Store, name: str) -> list[tuple[int, str | None, dict[str, Any]]]:
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        return crud.list_candidates(session=session, campaign_id=rec.id)


def _ingest(store: Store, name: str, text: str) -> Any:
    with store.session_scope() as session:
        ingest_rows(session=session, name=name, rows=read_rows(text, "r.csv"), source="r.csv")
        rec = crud.get_campaign(session=session, name=name)
        return crud.list_measurements(session=session, campaign_id=rec.id)


def test_add_candidates_streams_an_iterator(store: Store) -> None:
    rows = ((f"k{i}", {"x": float(i)}) for i in range(23))
    with store.session_scope() as session:
        rec = crud.create_campaign(session=session, name="s", spec={})
        n = crud.add_candidates(session=session, campaign_id=rec.id, rows=rows, chunk_size=5)
        got = crud.list_candidates(session=session, campaign_id=rec.id)
    assert n == 23
    assert [(i, k, p["x"]) for i, k, p in got] == [(i, f"k{i}", float(i)) for i in range(23)]


def test_example_campaign_stores_its_pool(store: Store) -> None:
    with store.session_scope() as session:
        rec = create_campaign(session=session, path=LI_TM)
    spec = parse_spec(rec.spec)
    assert spec.is_pool and spec.compositions is not None
    cands = _candidates(store, rec.name)
    expected = list(composition_pool(spec))
    assert [(k, p) for _, k, p in cands] == expected
    assert len(cands) == 33  # of 282 compositions on the 0.1 grid, 33 are charge-balanced
    assert all(set(p) == {"Li", "Fe", "Mn", "O"} for _, _, p in cands)


def test_a_pool_of_thousands_is_created(store: Store) -> None:
    spec = _spec(
        elements=["Li", "Fe", "Mn", "Ni", "O"], step=0.05, min_components=2, max_components=4
    )
    with store.session_scope() as session:
        create_campaign_from_spec(session=session, spec=spec, candidates=None)
    cands = _candidates(store, "oxides")
    assert len(cands) == 6745 == count_compositions(5, 20, 2, 4)
    # binaries first, then ternaries, then quaternaries; the last one shares out the most units
    assert cands[0][1] == "Li0.05Fe0.95" and cands[-1][1] == "Fe0.85Mn0.05Ni0.05O0.05"


def test_an_empty_charge_balanced_pool_is_refused(store: Store) -> None:
    raw = _spec(elements=["Li", "Fe"], min_components=2, charge_balanced=True).to_json()
    raw["parameters"] = []
    with pytest.raises(SpecError, match="charge-balanced"), store.session_scope() as session:
        create_campaign_from_spec(session=session, spec=parse_spec(raw), candidates=None)
    with store.session_scope() as session:
        assert not crud.campaign_exists(session=session, name="oxides")


def test_ingest_matches_formulas_and_element_columns_to_candidates(store: Store) -> None:
    with store.session_scope() as session:
        create_campaign_from_spec(session=session, spec=_spec(), candidates=None)
    index = {k: i for i, k, _ in _candidates(store, "oxides")}
    ms = _ingest(store, "oxides", "composition,energy\nFe2O3,-1.7\nLiFeO2,-1.9\n")
    assert ms[0].params == {"Li": 0.0, "Fe": 0.4, "Mn": 0.0, "O": 0.6}
    assert ms[0].candidate_idx == index["Fe0.4O0.6"]
    # LiFeO2 (0.25 each of Li and Fe) is off the 0.1 grid: stored, with no candidate
    assert ms[1].params["Li"] == 0.25 and ms[1].candidate_idx is None
    ms = _ingest(store, "oxides", "Li,Fe,Mn,O,energy\n0.1,0.2,0.1,0.6,-2\n0,0.5,0,0.5,-1.4\n")
    assert ms[2].candidate_idx == index["Li0.1Fe0.2Mn0.1O0.6"]
    assert ms[3].candidate_idx == index["Fe0.5O0.5"]


def test_ingest_names_a_formula_outside_the_space(store: Store) -> None:
    with store.session_scope() as session:
        create_campaign_from_spec(session=session, spec=_spec(), candidates=None)
    with pytest.raises(IngestError) as info:
        _ingest(store, "oxides", "composition,energy\nFe2O3,-1\nCoO,-1\n")
    assert info.value.problems == [
        "r.csv, line 3, column 'composition': 'CoO' holds ['Co'], outside the elements "
        "['Li', 'Fe', 'Mn', 'O'] of 'composition'; this campaign can only store compositions "
        "of those elements"
    ]
    assert _candidates(store, "oxides")  # the campaign is intact
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="oxides")
        assert crud.count_measurements(session=session, campaign_id=rec.id) == 0


def test_propose_runs_on_a_composition_campaign(store: Store, tmp_path: Path) -> None:
    with store.session_scope() as session:
        create_campaign_from_spec(session=session, spec=_spec(), candidates=None)
    art = tmp_path / "artifacts"
    pool = {i: p for i, _, p in _candidates(store, "oxides")}
    measured: set[int] = set()
    strategies = []
    for _ in range(2):
        with store.session_scope() as session:
            res = propose(session=session, name="oxides", seed=0, artifact_dir=art)
        strategies.append(res.strategy)
        rows = []
        for p in res.proposals:
            assert p.candidate_idx is not None and p.params == pool[p.candidate_idx]
            assert p.candidate_idx not in measured
            measured.add(p.candidate_idx)
            energy = -2.0 * p.params["O"] + p.params["Li"] - 0.5 * p.params["Mn"]
            rows.append(f"{p.id},{energy}")
        _ingest(store, "oxides", "proposal_id,energy\n" + "\n".join(rows) + "\n")
    assert strategies[0] == "sobol" and strategies[1].startswith("gp")
    assert len(measured) == 6
