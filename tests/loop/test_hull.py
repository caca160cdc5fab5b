"""Energy above the convex hull: a Li-O system worked by hand, random ternaries against pymatgen,
the plotting table, and refusals of bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from loop.hull import HullError, hull_distances, hull_table

# Li-O with chosen energies (eV/atom). Formation energy per atom at O fraction x:
#   Ef = E - ((1 - x) E_Li + x E_O), with E_Li = -1.90, E_O = -4.95
#   Li2O  x = 1/3  E = -4.800  Ef = -4.800 + 2.91667 = -1.88333  (hull vertex)
#   Li2O2 x = 1/2  E = -4.925  Ef = -4.925 + 3.42500 = -1.50000  (hull vertex: the chord
#                                    Li2O-O gives -1.41250 there, higher)
#   LiO2  x = 2/3  E = -4.400  Ef = -4.400 + 3.93333 = -0.46667  (chord Li2O2-O: -1.0, so
#                                    0.53333 above)
#   O2    x = 1    E = -4.900  Ef = +0.05                        (0.05 above the O reference)
#   Li2O  x = 1/3  E = -4.700  Ef = -1.78333                     (0.10 above its polymorph)
E_LI, E_O = -1.90, -4.95
LI_O_REFS = [("Li", E_LI), ("O", E_O)]
LI_O_PHASES = [("Li2O", -4.8), ("Li2O2", -4.925), ("LiO2", -4.4), ("O2", -4.9), ("Li2O", -4.7)]
LI_O_BY_HAND = [0.0, 0.0, 1.6 / 3, 0.05, 0.1]


def _fraction_o(formula: str) -> Fraction:
    n = {"Li2O": (2, 1), "Li2O2": (2, 2), "LiO2": (1, 2), "O2": (0, 2), "Li": (1, 0), "O": (0, 1)}
    li, o = n[formula]
    return Fraction(o, li + o)


def _lower_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Andrew's monotone chain, lower half: vertices of the lower convex hull, by x."""
    lowest: dict[float, float] = {}
    for x, y in points:
        lowest[x] = min(y, lowest.get(x, y))
    hull: list[tuple[float, float]] = []
    for p in sorted(lowest.items()):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def _hull_energy(hull: list[tuple[float, float]], x: float) -> float:
    for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
        if x1 <= x <= x2:
            return y1 + (y2 - y1) * (x - x1) / (x2 - x1)
    raise AssertionError(f"x = {x} outside the hull")


def test_li_o_by_hand() -> None:
    points = []
    for f, e in LI_O_PHASES + LI_O_REFS:
        x = float(_fraction_o(f))
        points.append((x, e - ((1 - x) * E_LI + x * E_O)))
    hull = _lower_hull(points)
    expected = [y - _hull_energy(hull, x) for x, y in points[: len(LI_O_PHASES)]]

    got = hull_distances(LI_O_PHASES, LI_O_REFS)

    assert got == pytest.approx(expected, abs=1e-9)
    assert got == pytest.approx(LI_O_BY_HAND, abs=1e-9)
    assert [round(x, 4) for x, _ in hull] == [0.0, 0.3333, 0.5, 1.0]


def test_hull_table_for_a_binary_plot() -> None:
    table = hull_table(LI_O_PHASES, LI_O_REFS)

    assert table.elements == ("Li", "O")  # by electronegativity: x is the O fraction
    assert [p.formula for p in table.phases] == [f for f, _ in LI_O_PHASES]
    assert [p.formula for p in table.references] == ["Li", "O"]
    assert [p.e_above_hull for p in table.phases] == pytest.approx(LI_O_BY_HAND, abs=1e-9)
    assert [p.stable for p in table.phases] == [True, True, False, False, False]
    li2o2 = table.phases[1]
    assert li2o2.fractions == pytest.approx((0.5, 0.5))
    assert li2o2.formation_energy == pytest.approx(-1.5)
    assert li2o2.energy_per_atom == -4.925
    # the hull line: one vertex per composition, by O fraction
    assert [p.formula for p in table.stable] == ["Li", "Li2O", "Li2O2", "O"]
    assert [p.fractions[1] for p in table.stable] == pytest.approx([0, 1 / 3, 0.5, 1])
    assert [p.formation_energy for p in table.stable] == pytest.approx([0, -1.88333333, -1.5, 0])


def test_an_elemental_phase_can_be_its_own_reference() -> None:
    # the campaign measured both elements itself: no references needed
    got = hull_distances([("Li", -1.9), ("O2", -4.95), ("Li2O", -4.0)])
    assert got == pytest.approx([0.0, 0.0, 0.0])
    assert hull_distances([]) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_ternaries_match_pymatgen(seed: int) -> None:
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    rng = np.random.default_rng(seed)
    elements = ["Li", "Fe", "O"]
    refs = [(el, float(rng.uniform(-8, -2))) for el in elements]
    refs.append(("Fe2O3", float(rng.uniform(-8, -6))))
    phases = []
    for _ in range(25):
        amounts = rng.integers(0, 5, size=3)
        if amounts.sum() == 0:
            amounts[2] = 1
        formula = "".join(f"{el}{n}" for el, n in zip(elements, amounts) if n)
        phases.append((formula, float(rng.uniform(-8, -2))))

    got = hull_distances(phases, refs)

    entries = [PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in phases + refs]
    pd = PhaseDiagram(entries)
    want = [pd.get_e_above_hull(en) for en in entries[: len(phases)]]
    assert got == pytest.approx(want, abs=1e-9)
    assert min(got) >= 0.0
    assert any(g == 0.0 for g in got) and any(g > 0.0 for g in got)


def test_references_outside_the_system_are_left_out() -> None:
    refs = LI_O_REFS + [("Fe", -8.3), ("Fe2O3", -6.8), ("Li2O", -4.9)]
    table = hull_table(LI_O_PHASES, refs)
    assert table.elements == ("Li", "O")
    assert [p.formula for p in table.references] == ["Li", "O", "Li2O"]
    # the lower reference Li2O now sets the hull: the measured one is 0.1 above it
    assert table.phases[0].e_above_hull == pytest.approx(0.1)
    assert not table.phases[0].stable


@pytest.mark.parametrize(
    ("phases", "references", "needle"),
    [
        ([("Li2O", -4.8)], [("Li", -1.9)], "no elemental reference for O"),
        ([("Li2O", -4.8), ("FeO", -7.0)], [], "no elemental reference for Li, Fe, O"),
        ([("Xx2O", -4.8)], LI_O_REFS, "names no element 'Xx'"),
        ([("Li2O+", -4.8)], LI_O_REFS, "'Li2O+' is not a chemical formula"),
        ([("Li2O", float("nan"))], LI_O_REFS, "is nan, not a finite number"),
        ([("Li2O", True)], LI_O_REFS, "is True, not a finite number"),
        (["Li2O"], LI_O_REFS, "is not a (formula, energy_per_atom) pair"),
        ([("Li2O", -4.8)], [("Li", -1.9, 0)], "references[0]"),
    ],
)
def test_bad_input_is_refused_by_name(
    phases: list[tuple[str, float]], references: list[tuple[str, float]], needle: str
) -> None:
    with pytest.raises(HullError) as err:
        hull_distances(phases, references)
    assert needle in str(err.value)
    assert err.value.hint
    assert isinstance(err.value, ValueError)


def test_missing_reference_hint_names_the_fix() -> None:
    with pytest.raises(HullError, match=r"add \('O', E\) to references"):
        hull_table([("Li2O", -4.8)], [("Li", -1.9)])
