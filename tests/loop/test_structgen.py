"""Prototype substitution: the perovskite prototype, charge balance, the Goldschmidt window,
lattice scaling, deduplication, stable keys, and refusals of bad input."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, DummySpecies, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from loop.structgen import (
    SubstitutionError,
    goldschmidt_tolerance,
    perovskite_prototype,
    substitute,
)

# Shannon ionic radii (Angstrom), pymatgen's table: B and X 6-fold
R_TI4, R_ZR4, R_O2 = 0.605, 0.72, 1.40
R_NA1, R_K1, R_LI1, R_CL1 = 1.02, 1.38, 0.76, 1.81


@pytest.fixture(scope="module")
def perovskite() -> Structure:
    return perovskite_prototype()


@pytest.fixture(scope="module")
def oxides(perovskite: Structure) -> list[tuple[str, Structure]]:
    subs = {"A": ["Ca", "Sr", "Ba", "La", "K"], "B": ["Ti", "Zr", "Nb", "Fe", "Al"]}
    # LaZrO3 balances only as La3+ Zr3+ or La2+ Zr4+, ions without Shannon radii
    with pytest.warns(UserWarning, match=r"La2\+ \(1 structure\), Zr3\+"):
        return substitute({"perovskite": perovskite}, subs)


def test_the_prototype_is_cubic_srtio3_labelled_by_site_class(perovskite: Structure) -> None:
    assert len(perovskite) == 5
    assert SpacegroupAnalyzer(perovskite).get_space_group_symbol() == "Pm-3m"
    assert [s.label for s in perovskite] == ["A", "B", "X", "X", "X"]
    assert [s.species_string for s in perovskite] == ["Sr", "Ti", "O", "O", "O"]
    assert perovskite.lattice.abc == pytest.approx((3.9, 3.9, 3.9))
    assert perovskite_prototype(4.2).lattice.a == pytest.approx(4.2)
    for bad in (0, -1.0, float("nan"), "3.9"):
        with pytest.raises(SubstitutionError, match="lattice parameter"):
            perovskite_prototype(bad)  # type: ignore[arg-type]


def test_substituted_perovskites_are_valid_and_charge_balanced(
    oxides: list[tuple[str, Structure]],
) -> None:
    keys = [k for k, _ in oxides]
    assert len(keys) == len(set(keys))
    assert {"SrTiO3-perovskite", "BaZrO3-perovskite", "LaAlO3-perovskite"} <= set(keys)
    assert "KNbO3-perovskite" in keys  # K+ Nb5+: balanced with other states than Sr2+ Ti4+
    for key, s in oxides:
        assert len(s) == 5 and s.is_ordered
        assert SpacegroupAnalyzer(s).get_space_group_symbol() == "Pm-3m", key
        assert Composition(s.composition.reduced_formula).oxi_state_guesses(), key
        sub = s.properties["substitution"]
        assert [x.species_string for x in s] == [sub["A"], sub["B"], "O", "O", "O"]
        assert key == f"{sub['A']}{sub['B']}O3-perovskite"
        assert 0.8 <= s.properties["tolerance_factor"] <= 1.1
        # plain species labels: a CIF of it has unique site labels
        assert [x.label for x in s] == [x.species_string for x in s]
    # e.g. K+ with Ti: K2TiO3-like charge cannot balance in ABX3, and Ca/Al neither
    assert "KTiO3-perovskite" not in keys
    assert "CaAlO3-perovskite" not in keys


def test_no_two_structures_match(oxides: list[tuple[str, Structure]]) -> None:
    matcher = StructureMatcher()
    for (k1, s1), (k2, s2) in itertools.combinations(oxides, 2):
        assert not matcher.fit(s1, s2), (k1, k2)


def test_output_is_stable(perovskite: Structure, oxides: list[tuple[str, Structure]]) -> None:
    with pytest.warns(UserWarning):
        again = substitute(
            {"perovskite": perovskite},
            {"A": ["Ca", "Sr", "Ba", "La", "K"], "B": ["Ti", "Zr", "Nb", "Fe", "Al"]},
        )
    assert [k for k, _ in again] == [k for k, _ in oxides]
    assert all(a == b for (_, a), (_, b) in zip(again, oxides))


def test_the_tolerance_window_filters(perovskite: Structure) -> None:
    t = {b: goldschmidt_tolerance("Mg", b, "O") for b in ("Ti", "Zr")}
    assert t["Ti"] > 0.8 > t["Zr"]  # the bigger B ion pushes t below the window
    assert goldschmidt_tolerance("Ba", "Si", "O") > 1.1  # a small B ion pushes it above

    protos = {"perovskite": perovskite}
    subs = {"A": ["Mg", "Ba"], "B": ["Ti", "Zr", "Si"]}
    keys = [k for k, _ in substitute(protos, subs)]
    # MgSiO3 (t = 0.90) stays: bridgmanite is a perovskite
    assert keys == [
        "MgTiO3-perovskite",
        "MgSiO3-perovskite",
        "BaTiO3-perovskite",
        "BaZrO3-perovskite",
    ]
    wide = [k for k, _ in substitute(protos, subs, tolerance=(0.7, 1.2))]
    assert "MgZrO3-perovskite" in wide and "BaSiO3-perovskite" in wide
    assert len(substitute(protos, subs, radius_rule="none")) == 6


def test_tolerance_factor_from_shannon_radii() -> None:
    # Sr2+ XII 1.44, Ti4+ VI 0.605, O2- VI 1.40
    assert goldschmidt_tolerance("Sr", "Ti", "O") == pytest.approx(
        (1.44 + R_O2) / (math.sqrt(2) * (R_TI4 + R_O2))
    )


def test_the_lattice_scales_with_the_species(perovskite: Structure) -> None:
    out = dict(substitute({"p": perovskite}, {"A": ["Sr", "Ba"], "B": ["Ti", "Zr"]}))
    assert out["SrTiO3-p"].lattice.a == pytest.approx(2 * (R_TI4 + R_O2))
    assert out["BaZrO3-p"].lattice.a == pytest.approx(2 * (R_ZR4 + R_O2))
    assert out["BaZrO3-p"].lattice.a > out["SrTiO3-p"].lattice.a
    # the prototype's own cell edge does not matter
    big = dict(substitute({"p": perovskite_prototype(5.0)}, {"A": ["Sr"]}))
    assert big["SrTiO3-p"].lattice.a == pytest.approx(2 * (R_TI4 + R_O2))
    assert big["SrTiO3-p"].lattice.is_orthogonal


def test_a_generic_prototype_scales_by_reference_lattice_scaling() -> None:
    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    )
    # unlabelled sites carry their element as label: substitute by element
    out = dict(substitute({"rocksalt": nacl}, {"Na": ["Li", "K"]}))
    assert list(out) == ["LiCl-rocksalt", "KCl-rocksalt"]
    for key, r in (("LiCl-rocksalt", R_LI1), ("KCl-rocksalt", R_K1)):
        s = out[key]
        assert s.lattice.a == pytest.approx(5.64 * (r + R_CL1) / (R_NA1 + R_CL1))
        assert s.properties["tolerance_factor"] is None
        assert SpacegroupAnalyzer(s).get_space_group_symbol() == "Fm-3m"


def test_a_prototype_ion_without_radius_falls_back_to_atomic_radii_with_a_warning() -> None:
    sns = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.8), ["Sn", "S"], [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    )
    with pytest.warns(UserWarning, match=r"Sn2\+ \(2 structures\).*atomic radii"):
        out = dict(substitute({"rs": sns}, {"Sn": ["Pb", "Ca"]}))
    # pymatgen's atomic radii: Sn 1.45, Pb 1.80, Ca 1.80, S 1.00
    assert out["PbS-rs"].lattice.a == pytest.approx(5.8 * (1.80 + 1.00) / (1.45 + 1.00))


def test_duplicates_are_dropped() -> None:
    # B2 (CsCl type) with two site classes: Cu on M1 / Zn on M2 is Zn on M1 / Cu on M2
    b2 = Structure(Lattice.cubic(2.95), ["Cu", "Zn"], [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    b2 = Structure(b2.lattice, ["Cu", "Zn"], b2.frac_coords, labels=["M1", "M2"])
    out = substitute({"B2": b2}, {"M1": ["Cu", "Zn"], "M2": ["Cu", "Zn"]}, charge_balanced=False)
    assert [k for k, _ in out] == ["Cu-B2", "CuZn-B2", "Zn-B2"]


def test_the_same_prototype_twice_adds_nothing(perovskite: Structure) -> None:
    subs = {"A": ["Sr", "Ba"], "B": ["Ti"]}
    twice = substitute({"one": perovskite, "two": perovskite_prototype(4.5)}, subs)
    assert [k for k, _ in twice] == ["SrTiO3-one", "BaTiO3-one"]


def test_same_formula_different_structures_get_numbered_keys(perovskite: Structure) -> None:
    # Ti on A and Sr on B is another structure of formula SrTiO3; so is a second prototype
    out = substitute(
        {"p": perovskite},
        {"A": ["Sr", "Ti"], "B": ["Ti", "Sr"]},
        charge_balanced=False,
        radius_rule="none",
    )
    keys = [k for k, _ in out]
    assert "SrTiO3-p" in keys and "TiSrO3-p" in keys
    assert len(keys) == len(set(keys)) == 4


def test_charge_balance_can_be_switched_off(perovskite: Structure) -> None:
    subs = {"A": ["Na"], "B": ["Ti"]}  # Na+ Ti4+ O3: -1 left over
    assert substitute({"p": perovskite}, subs) == []
    # without oxidation states there is no tolerance factor: the perovskite rule drops it ...
    assert substitute({"p": perovskite}, subs, charge_balanced=False) == []
    # ... unless the radius rule is off; the cell is then scaled by atomic radii
    ((key, s),) = substitute({"p": perovskite}, subs, charge_balanced=False, radius_rule="none")
    assert key == "NaTiO3-p"
    assert s.properties["oxidation_states"] is None
    assert s.lattice.a != pytest.approx(3.9)


def test_missing_radii_warn_and_can_be_supplied(perovskite: Structure) -> None:
    subs = {"A": ["Cs"], "B": ["Sn", "Pb"], "X": ["I"]}
    with pytest.warns(UserWarning, match=r"no Shannon radius for Sn2\+.*radii=\{'Sn2\+'"):
        out = substitute({"p": perovskite}, subs)
    assert [k for k, _ in out] == ["CsPbI3-p"]
    out = substitute({"p": perovskite}, subs, radii={"Sn2+": 1.18})
    assert [k for k, _ in out] == ["CsSnI3-p", "CsPbI3-p"]
    assert dict(out)["CsSnI3-p"].lattice.a == pytest.approx(2 * (1.18 + 2.20))
    with pytest.raises(SubstitutionError, match=r"Sn2\+"):
        goldschmidt_tolerance("Cs", "Sn", "I")


def _raises(match: str, *args: Any, **kwargs: Any) -> SubstitutionError:
    with pytest.raises(SubstitutionError, match=match) as err:
        substitute(*args, **kwargs)
    assert isinstance(err.value, ValueError)
    assert err.value.hint
    return err.value


@pytest.mark.parametrize(
    ("symbols", "match", "hint"),
    [
        (["Sr", "Xx"], "'Xx' is not an element symbol", "element symbols"),
        (["sr"], "'sr' is not an element symbol", "did you mean 'Sr'"),
        (["Fe3+"], "'Fe3\\+' is not an element symbol", "oxidation states are guessed"),
        ([""], "'' is not an element symbol", "'Sr'"),
        ([38], "38 is not an element symbol", "'Sr'"),
        ([], "list for site class 'A' is empty", "leave the class out"),
        ("Sr", "'Sr', not a list", "give a list"),
        (["Sr", "Sr"], "repeats \\['Sr'\\]", "once"),
    ],
)
def test_bad_symbols_are_refused(
    perovskite: Structure, symbols: Any, match: str, hint: str
) -> None:
    err = _raises(match, {"p": perovskite}, {"A": symbols})
    assert hint in err.hint


def test_bad_prototypes_and_options_are_refused(perovskite: Structure) -> None:
    subs = {"A": ["Sr"]}
    _raises("must map names to structures", perovskite, subs)
    _raises("prototypes is empty", {}, subs)
    _raises("not a pymatgen Structure", {"p": "SrTiO3"}, subs)
    _raises("substitutions must be a non-empty mapping", {"p": perovskite}, {})
    err = _raises("site class 'Q' labels no site", {"p": perovskite}, {"Q": ["Sr"]})
    assert "'A', 'B', 'X'" in str(err)
    _raises("radius_rule 'tight' is unknown", {"p": perovskite}, subs, radius_rule="tight")
    _raises("tolerance", {"p": perovskite}, subs, tolerance=(1.1, 0.8))
    _raises("radii entry 'Sn'", {"p": perovskite}, subs, radii={"Sn": 1.1})
    rocksalt = Structure(Lattice.cubic(4), ["Na", "Cl"], [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    err = _raises(
        "needs perovskite prototypes",
        {"p": perovskite, "rs": rocksalt},
        subs,
        radius_rule="goldschmidt",
    )
    assert "['rs']" in str(err)
    disordered = perovskite.copy()
    disordered.replace(0, {"Sr": 0.5, "Ba": 0.5})
    _raises("disordered", {"p": disordered}, subs)
    dummy = Structure(
        perovskite.lattice,
        [DummySpecies("X"), "Ti", "O", "O", "O"],
        perovskite.frac_coords,
        labels=["A", "B", "X", "X", "X"],
    )
    _raises("placeholder species", {"p": dummy}, {"B": ["Zr"]})
    assert [k for k, _ in substitute({"p": dummy}, subs)] == ["SrTiO3-p"]


def test_too_many_combinations_are_refused_before_any_work(perovskite: Structure) -> None:
    subs = {"A": ["Ca", "Sr", "Ba"], "B": ["Ti", "Zr", "Hf"], "X": ["O", "F"]}
    err = _raises(
        "18 combinations .* max_structures = 10", {"p": perovskite}, subs, max_structures=10
    )
    assert "raise max_structures" in err.hint
    assert len(substitute({"p": perovskite}, subs, max_structures=18)) > 0


def test_a_large_screen_is_consistent(perovskite: Structure) -> None:
    a = ["Li", "Na", "K", "Rb", "Cs", "Ca", "Sr", "Ba", "La", "Pb"]
    b = ["Ti", "Zr", "Hf", "Nb", "Ta", "Mn", "Fe", "Co", "Ni", "Al"]
    with pytest.warns(UserWarning, match="no Shannon radius"):
        out = substitute({"p": perovskite}, {"A": a, "B": b, "X": ["O", "F", "Cl"]})
    assert 50 < len(out) < 300
    assert len({k for k, _ in out}) == len(out)
    for _, s in out:
        assert 0.8 <= s.properties["tolerance_factor"] <= 1.1
        assert Composition(s.composition.reduced_formula).oxi_state_guesses()
