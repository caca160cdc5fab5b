"""Candidate crystal structures by prototype substitution.

A prototype is a pymatgen `Structure` whose site labels name site classes: `perovskite_prototype`
gives cubic SrTiO3 with its sites labelled `"A"` (Sr), `"B"` (Ti) and `"X"` (the three O). A
substitution maps site classes to replacement elements, `{"A": ["Sr", "Ba"], "B": ["Ti", "Zr"]}`;
every combination (one element per class, all sites of a class alike) is one candidate, and
classes left out keep the prototype's species. Sites without an explicit label carry their
species string as label, so an unlabelled prototype is substituted by element: `{"Ti": [...]}`.

Each candidate then passes, in order:

1. Charge balance (`charge_balanced=True`): pymatgen's `Composition.oxi_state_guesses()` must find
   an assignment of common (ICSD) oxidation states summing to zero. The best-ranked guess with
   integer states whose ions have radii (for perovskites also: cations on A and B, an anion on
   X) gives the ions of the next two steps.
2. The radius rule. For perovskite prototypes (site classes exactly A, B and X in the ratio
   1:1:3) the Goldschmidt tolerance factor `t = (r_A + r_X) / (sqrt(2) (r_B + r_X))` must lie in
   `tolerance` (default 0.8 to 1.1), from Shannon ionic radii with A 12-fold, B and X 6-fold
   coordinated (the nearest coordination Shannon lists where that one is missing; high spin
   where both are listed). Other prototypes have no radius rule.
3. Lattice scaling. Perovskites get the pseudo-cubic cell edge `a = 2 (r_B + r_X)` (B-X bonds
   touching; SrTiO3 4.01 A, measured 3.905 A), i.e. a volume of `a^3` per formula unit; other
   prototypes are scaled as pymatgen's `RLSVolumePredictor` does, by the cube of
   `sum_el r_el n_el^(1/3)` relative to the prototype's own (Shannon radii near 6-fold, else
   atomic radii for both). Where no radius is known the prototype's volume is kept, with a
   warning.
4. Deduplication: structures of one reduced formula are compared with pymatgen's
   `StructureMatcher` (default tolerances) and only the first of each match group is kept.

Cost (2-core dev machine, after `import pymatgen.core`, 0.45 s): 10 A x 10 B x 3 X on the
perovskite prototype (300 combinations, 84 kept) in 0.2 s, most of it pymatgen loading its
oxidation-state data on the first call; 20 x 20 x 4 (1,600, 406 kept) in 0.2 s; 200 rocksalt
substitutions (8-atom cell) in 0.26 s.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from loop.errors import LoopError

if TYPE_CHECKING:
    from pymatgen.core import Element, Structure

__all__ = [
    "RadiusRule",
    "SubstitutionError",
    "goldschmidt_tolerance",
    "perovskite_prototype",
    "substitute",
]

logger = logging.getLogger(__name__)

RadiusRule = Literal["auto", "goldschmidt", "none"]

_RULES = ("auto", "goldschmidt", "none")
_ROMAN = {r: n for n, r in enumerate("I II III IV V VI VII VIII IX X XI XII".split(), start=1)}
_ROMAN["XIV"] = 14
#: Coordination numbers of the Goldschmidt radii per perovskite site class.
_PEROVSKITE_CN = {"A": 12, "B": 6, "X": 6}


class SubstitutionError(LoopError, ValueError):
    """A prototype, substitution or option cannot be used (also a `ValueError`)."""


def perovskite_prototype(a: float = 3.9) -> Structure:
    """The cubic ABX3 perovskite (Pm-3m, 5 atoms) as SrTiO3 with sites labelled by class.

    Sites, in order: A = Sr at (1/2, 1/2, 1/2), B = Ti at the origin, X = O at (1/2, 0, 0),
    (0, 1/2, 0) and (0, 0, 1/2); `site.label` is `"A"`, `"B"` or `"X"`. The real elements make
    the prototype a valid structure of its own; `substitute` replaces them by class. (pymatgen
    warns that such labels are not unique when the prototype itself is written as CIF; the
    structures `substitute` returns carry plain species labels.)

    Args:
        a: Cubic lattice parameter in Angstrom (substitution rescales it per candidate).

    Raises:
        SubstitutionError: When `a` is not a positive finite number.
    """
    from pymatgen.core import Lattice, Structure

    if isinstance(a, bool) or not isinstance(a, (int, float)) or not (math.isfinite(a) and a > 0):
        raise SubstitutionError(
            f"perovskite lattice parameter a = {a!r} is not a positive number of Angstrom",
            "pass a cell edge such as a=3.9",
        )
    coords: list[list[float]] = [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]
    return Structure(
        Lattice.cubic(float(a)),
        ["Sr", "Ti", "O", "O", "O"],
        coords,
        labels=["A", "B", "X", "X", "X"],
    )


def goldschmidt_tolerance(
    a: str, b: str, x: str, *, radii: Mapping[str, float] | None = None
) -> float:
    """The Goldschmidt tolerance factor of the ABX3 perovskite of these elements.

    Oxidation states are pymatgen's best-ranked guess for the composition ABX3 that has Shannon
    radii (A 12-fold, B and X 6-fold, as in `substitute`).

    Args:
        a: A-site element symbol, e.g. `"Sr"`.
        b: B-site element symbol, e.g. `"Ti"`.
        x: X-site element symbol, e.g. `"O"`.
        radii: Ionic radii in Angstrom for ions pymatgen lacks, keyed like `"Sn2+"`.

    Raises:
        SubstitutionError: A symbol is not an element, ABX3 cannot be charge-balanced, or an ion
            has no radius.
    """
    from pymatgen.core import Composition

    els = [_element(s, f"{role}-site element") for role, s in (("A", a), ("B", b), ("X", x))]
    extra = _check_radii(radii)
    counts: Counter[str] = Counter()
    for el, n in zip(els, (1, 1, 3)):
        counts[el.symbol] += n
    guesses = Composition(dict(counts)).oxi_state_guesses()
    if not guesses:
        raise SubstitutionError(
            f"{a}{b}{x}3 cannot be charge-balanced with common oxidation states",
            "choose elements whose usual oxidation states sum to zero in ABX3",
        )
    missing: set[str] = set()
    fit = _perovskite_fit(els[0], els[1], els[2], guesses, extra, missing)
    if fit is None:
        raise SubstitutionError(
            f"no ionic radius for {', '.join(sorted(missing)) or 'these ions'} in {a}{b}{x}3 "
            "(pymatgen's Shannon table lacks it)",
            "pass radii={"
            + ", ".join(f"'{ion}': r" for ion in sorted(missing) or ["ION"])
            + "} with r in Angstrom",
        )
    return fit[0]


def substitute(
    prototypes: Mapping[str, Structure],
    substitutions: Mapping[str, Sequence[str]],
    *,
    charge_balanced: bool = True,
    radius_rule: RadiusRule = "auto",
    tolerance: tuple[float, float] = (0.8, 1.1),
    radii: Mapping[str, float] | None = None,
    max_structures: int = 10_000,
) -> list[tuple[str, Structure]]:
    """Substituted structures of every prototype, filtered, rescaled and deduplicated.

    Combinations are enumerated per prototype (in mapping order) as the product of the
    substitution lists of its site classes (in order of their first site), so the output order
    is stable. Each structure keeps the prototype's site order and fractional coordinates, has
    plain species labels (so its CIF site labels are unique), and records in
    `structure.properties`: `prototype` (name), `substitution` (class -> element),
    `oxidation_states` (element -> state used for radii, or None) and `tolerance_factor`
    (perovskites with radii, else None).

    Cost: 0.2 s for 300 or 1,600 perovskite combinations on 2 cores (see the module
    docstring); deduplication compares only structures of one reduced formula.

    Args:
        prototypes: Prototype name -> labelled ordered structure, e.g.
            `{"perovskite": perovskite_prototype()}`.
        substitutions: Site class (a site label) -> element symbols to put on those sites.
            Every class must label sites of at least one prototype.
        charge_balanced: Keep only structures pymatgen can charge-balance.
        radius_rule: `"auto"`: Goldschmidt window on perovskite prototypes, none on others;
            `"goldschmidt"`: the same, and every prototype must be a perovskite (labels A, B, X
            in the ratio 1:1:3); `"none"`: no radius filter.
        tolerance: Inclusive window `(low, high)` of the Goldschmidt tolerance factor.
        radii: Ionic radii in Angstrom for ions pymatgen lacks, keyed like `"Sn2+"` (used at
            every coordination).
        max_structures: Most combinations (before filtering) this call may enumerate.

    Returns:
        `(key, structure)` pairs. The key is `"{formula}-{prototype name}"`, the reduced
        formula with elements in site order (`"PbTiO3-perovskite"`; Ti on the A site would read
        `"TiPbO3-perovskite"`), with `-2`, `-3`, ... appended for further distinct structures
        under the same key.

    Raises:
        SubstitutionError: Bad prototypes (not a mapping, empty, disordered, placeholder
            species left unsubstituted), bad substitutions (unknown element symbols, empty or
            repeated lists, classes no prototype has), bad options, or more combinations than
            `max_structures`.
    """
    from pymatgen.core import Composition, Lattice, Structure

    protos = _check_prototypes(prototypes)
    subs = _check_substitutions(substitutions, protos)
    if radius_rule not in _RULES:
        raise SubstitutionError(
            f"radius_rule {radius_rule!r} is unknown", f"use one of {', '.join(_RULES)}"
        )
    lo, hi = _check_window(tolerance)
    extra = _check_radii(radii)
    if isinstance(max_structures, bool) or not isinstance(max_structures, int):
        raise SubstitutionError(
            f"max_structures = {max_structures!r} is not an integer", "pass e.g. 10_000"
        )
    if radius_rule == "goldschmidt":
        bad = [p.name for p in protos if not p.perovskite]
        if bad:
            raise SubstitutionError(
                f"radius_rule='goldschmidt' needs perovskite prototypes (site labels A, B, X in "
                f"the ratio 1:1:3); {bad} are not",
                "label the sites A, B and X, or use radius_rule='auto' to filter only perovskites",
            )

    plans = []
    total = 0
    for p in protos:
        classes = [c for c in p.classes if c in subs]
        n = math.prod(len(subs[c]) for c in classes)
        total += n
        plans.append((p, classes, n))
    if total > max_structures:
        per = ", ".join(f"{p.name}: {n:,}" for p, _, n in plans)
        raise SubstitutionError(
            f"the substitutions give {total:,} combinations ({per}), more than "
            f"max_structures = {max_structures:,}",
            "shorten the substitution lists, or raise max_structures",
        )

    guess_cache: dict[str, tuple[dict[str, float], ...]] = {}
    dropped: Counter[str] = Counter()
    # ions without a radius, and how many structures each cost a filter decision or a scaling
    unfiltered: Counter[str] = Counter()
    unscaled: Counter[str] = Counter()
    ref_sums: dict[str, tuple[float | None, float | None]] = {}
    ref_missing: dict[str, set[str]] = {}
    kept: list[tuple[str, str, Any]] = []  # (reduced formula, key formula, structure)
    for p, classes, _ in plans:
        for combo in itertools.product(*(subs[c] for c in classes)):
            choice = dict(zip(classes, combo))
            # placeholder sites (own None) are substituted: _check_substitutions ensures it
            species = cast("list[str]", [choice.get(lbl, own) for lbl, own in zip(p.labels, p.own)])
            comp = Composition(Counter(species))
            formula = comp.reduced_formula
            guesses = guess_cache.get(formula)
            if guesses is None:
                guesses = comp.oxi_state_guesses()
                guess_cache[formula] = guesses
            if charge_balanced and not guesses:
                dropped["not charge-balanced"] += 1
                continue
            miss: set[str] = set()
            states, t, volume = None, None, None
            if p.perovskite:
                site = [_as_element(choice.get(c, p.class_species[c])) for c in "ABX"]
                fit = _perovskite_fit(site[0], site[1], site[2], guesses, extra, miss)
                if fit is not None:
                    t, a_pc, states = fit
                    volume = p.n_formula_units * a_pc**3
            if p.perovskite and radius_rule != "none":
                if t is None:
                    dropped["no ionic radii for the tolerance factor"] += 1
                    unfiltered.update(miss)
                    continue
                if not lo <= t <= hi:
                    dropped[f"tolerance factor outside [{lo:g}, {hi:g}]"] += 1
                    continue
            if volume is None:
                states = states or _integer_guess(guesses)
                if p.name not in ref_sums:
                    ref_missing[p.name] = set()
                    ref_sums[p.name] = _prototype_radius_sum(p, extra, ref_missing[p.name])
                volume, ionic = _rls_volume(p, ref_sums[p.name], comp, states, extra, miss)
                if not ionic:
                    unscaled.update(miss | ref_missing[p.name])
            lattice = p.structure.lattice
            if volume is not None:
                lattice = Lattice(lattice.matrix * (volume / lattice.volume) ** (1 / 3))
            s = Structure(
                lattice,
                species,
                p.structure.frac_coords,
                properties={
                    "prototype": p.name,
                    "substitution": dict(choice),
                    "oxidation_states": dict(states) if states else None,
                    "tolerance_factor": t,
                },
            )
            kept.append((formula, _site_order_formula(species), s))

    out = _deduplicate(kept, dropped)
    for ions, what in (
        (unfiltered, "dropped (no tolerance factor)"),
        (unscaled, "scaled by atomic radii or left at the prototype's volume"),
    ):
        if ions:
            named = ", ".join(
                f"{ion} ({n} structure{'s' if n > 1 else ''})" for ion, n in sorted(ions.items())
            )
            fix = ", ".join(f"'{ion}': r" for ion in sorted(ions))
            warnings.warn(
                f"pymatgen has no Shannon radius for {named}; those structures were {what}; "
                f"pass radii={{{fix}}} (r in Angstrom) to use them",
                stacklevel=2,
            )
    logger.info(
        "substitute: %d combinations, %d kept; dropped: %s",
        total,
        len(out),
        dict(dropped) or "none",
    )
    return out


# -- validation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prototype:
    name: str
    structure: Any
    labels: tuple[str, ...]
    own: tuple[str | None, ...]  # each site's element symbol, None for a placeholder species
    classes: tuple[str, ...]  # labels in order of their first site
    class_species: dict[str, str | None]  # the one element of a class, None when mixed
    perovskite: bool
    n_formula_units: int


def _element(symbol: Any, what: str) -> Element:
    from pymatgen.core import Element

    if not isinstance(symbol, str) or not symbol.strip():
        raise SubstitutionError(
            f"{what} {symbol!r} is not an element symbol", "give symbols such as 'Sr' or 'O'"
        )
    try:
        el = Element(symbol)
    except ValueError:
        el = None
    if not isinstance(el, Element):
        guess = symbol.strip().capitalize()
        hint = (
            f"did you mean {guess!r}?"
            if guess != symbol and Element.is_valid_symbol(guess)
            else "give element symbols such as 'Sr' or 'O' (oxidation states are guessed)"
        )
        raise SubstitutionError(f"{what} {symbol!r} is not an element symbol", hint)
    return el


def _as_element(symbol: str | None) -> Any:
    from pymatgen.core import Element

    return None if symbol is None else Element(symbol)


def _check_prototypes(prototypes: Any) -> list[_Prototype]:
    from pymatgen.core import Element, Species, Structure

    if isinstance(prototypes, Structure) or not isinstance(prototypes, Mapping):
        raise SubstitutionError(
            f"prototypes must map names to structures, got {type(prototypes).__name__}",
            'pass e.g. {"perovskite": perovskite_prototype()}',
        )
    if not prototypes:
        raise SubstitutionError(
            "prototypes is empty", 'pass e.g. {"perovskite": perovskite_prototype()}'
        )
    out = []
    for name, s in prototypes.items():
        if not isinstance(name, str) or not name.strip():
            raise SubstitutionError(
                f"prototype name {name!r} is not a non-empty string",
                "name each prototype, e.g. 'perovskite'",
            )
        if not isinstance(s, Structure):
            raise SubstitutionError(
                f"prototype {name!r} is a {type(s).__name__}, not a pymatgen Structure",
                "build it with pymatgen (Structure(...), Structure.from_file(...))",
            )
        if len(s) == 0 or not s.is_ordered:
            raise SubstitutionError(
                f"prototype {name!r} ({s.composition.formula}) is empty or disordered",
                "give an ordered structure: one species per site",
            )
        labels = tuple(str(site.label) for site in s)
        own: list[str | None] = []
        for site in s:
            sp = site.specie
            el = sp if isinstance(sp, Element) else getattr(sp, "element", None)
            is_el = isinstance(sp, (Element, Species)) and isinstance(el, Element)
            own.append(el.symbol if is_el and el is not None else None)
        per_class: dict[str, set[str | None]] = {}
        for lbl, sym in zip(labels, own):
            per_class.setdefault(lbl, set()).add(sym)
        class_species = {c: next(iter(v)) if len(v) == 1 else None for c, v in per_class.items()}
        counts = Counter(labels)
        n_fu = counts.get("A", 0)
        perovskite = (
            set(counts) == {"A", "B", "X"}
            and counts["B"] == n_fu
            and counts["X"] == 3 * n_fu
            and all(len(per_class[c]) == 1 for c in "ABX")
        )
        out.append(
            _Prototype(
                name=name,
                structure=s,
                labels=labels,
                own=tuple(own),
                classes=tuple(dict.fromkeys(labels)),
                class_species=class_species,
                perovskite=perovskite,
                n_formula_units=n_fu,
            )
        )
    return out


def _check_substitutions(
    substitutions: Any, protos: list[_Prototype]
) -> dict[str, tuple[str, ...]]:
    if not isinstance(substitutions, Mapping) or not substitutions:
        raise SubstitutionError(
            f"substitutions must be a non-empty mapping of site class to element symbols, got "
            f"{substitutions!r}",
            'pass e.g. {"A": ["Sr", "Ba"], "B": ["Ti", "Zr"]}',
        )
    known = sorted({c for p in protos for c in p.classes})
    subs: dict[str, tuple[str, ...]] = {}
    for label, symbols in substitutions.items():
        if label not in known:
            raise SubstitutionError(
                f"site class {label!r} labels no site of any prototype (their site labels: "
                f"{known})",
                "use the prototypes' site labels as substitution keys",
            )
        if isinstance(symbols, str) or not isinstance(symbols, Sequence):
            raise SubstitutionError(
                f"substitution for {label!r} is {symbols!r}, not a list of element symbols",
                f'give a list, e.g. {{"{label}": ["Sr", "Ba"]}}',
            )
        if not symbols:
            raise SubstitutionError(
                f"substitution list for site class {label!r} is empty",
                "give at least one element symbol, or leave the class out to keep its species",
            )
        els = tuple(_element(s, f"substitution for {label!r}:").symbol for s in symbols)
        dup = sorted({e for e in els if els.count(e) > 1})
        if dup:
            raise SubstitutionError(
                f"substitution list for site class {label!r} repeats {dup}",
                "list each element once",
            )
        subs[label] = els
    for p in protos:
        for i, (lbl, own) in enumerate(zip(p.labels, p.own)):
            if own is None and lbl not in subs:
                raise SubstitutionError(
                    f"prototype {p.name!r} site {i} (label {lbl!r}) holds a placeholder "
                    f"species ({p.structure[i].species_string}) and no substitution replaces it",
                    f"add {lbl!r} to substitutions, or put a real element on that site",
                )
    return subs


def _check_window(tolerance: Any) -> tuple[float, float]:
    ok = (
        isinstance(tolerance, (tuple, list))
        and len(tolerance) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in tolerance)
        and 0 < tolerance[0] < tolerance[1]
    )
    if not ok:
        raise SubstitutionError(
            f"tolerance {tolerance!r} is not a window (low, high) with 0 < low < high",
            "pass e.g. tolerance=(0.8, 1.1)",
        )
    return float(tolerance[0]), float(tolerance[1])


def _check_radii(radii: Any) -> dict[str, float]:
    from pymatgen.core import Species

    if radii is None:
        return {}
    if not isinstance(radii, Mapping):
        raise SubstitutionError(
            f"radii must map ions to radii, got {type(radii).__name__}",
            "pass e.g. radii={'Sn2+': 1.18}",
        )
    out = {}
    for key, r in radii.items():
        try:
            sp = Species.from_str(str(key))
        except ValueError:
            sp = None
        ok_r = isinstance(r, (int, float)) and math.isfinite(r) and r > 0
        if sp is None or sp.oxi_state in (None, 0) or not ok_r:
            raise SubstitutionError(
                f"radii entry {key!r}: {r!r} is not an ion with a positive radius",
                "key ions like 'Sn2+' or 'I-' and give radii in Angstrom, e.g. {'Sn2+': 1.18}",
            )
        out[str(sp)] = float(r)
    return out


# -- radii and volumes --------------------------------------------------------------------------


def _ion(el: Any, state: int) -> str:
    from pymatgen.core import Species

    return str(Species(el.symbol, state))


def _shannon(el: Any, state: int, cn: int, extra: dict[str, float], missing: set[str]) -> Any:
    """Shannon ionic radius at the coordination nearest `cn`; None (noted in `missing`) if
    pymatgen has none for this ion."""
    if state == 0:
        return None
    ion = _ion(el, state)
    if ion in extra:
        return extra[ion]
    table = el.data.get("Shannon radii", {}).get(str(state), {})
    cns = [(abs(_ROMAN[k] - cn), _ROMAN[k], k) for k in table if k in _ROMAN]
    if not cns:
        missing.add(ion)
        return None
    spins = table[min(cns)[2]]
    entry = spins.get("High Spin") or spins.get("") or next(iter(spins.values()))
    return float(entry["ionic_radius"])


def _integer_guess(guesses: tuple[dict[str, float], ...]) -> dict[str, int] | None:
    for g in guesses:
        if all(abs(v - round(v)) < 1e-6 for v in g.values()):
            return {el: round(v) for el, v in g.items()}
    return None


def _perovskite_fit(
    a: Any,
    b: Any,
    x: Any,
    guesses: tuple[dict[str, float], ...],
    extra: dict[str, float],
    missing: set[str],
) -> tuple[float, float, dict[str, int]] | None:
    """`(t, a_pc, states)` from the best-ranked guess with cations on A and B, an anion on X
    and a radius for each; None when no guess has them."""
    if a is None or b is None or x is None:
        return None
    for g in guesses:
        if not all(abs(v - round(v)) < 1e-6 for v in g.values()):
            continue
        states = {el: round(v) for el, v in g.items()}
        sa, sb, sx = states[a.symbol], states[b.symbol], states[x.symbol]
        if not (sa > 0 and sb > 0 and sx < 0):
            continue
        ra = _shannon(a, sa, _PEROVSKITE_CN["A"], extra, missing)
        rb = _shannon(b, sb, _PEROVSKITE_CN["B"], extra, missing)
        rx = _shannon(x, sx, _PEROVSKITE_CN["X"], extra, missing)
        if ra is None or rb is None or rx is None:
            continue
        t = (ra + rx) / (math.sqrt(2) * (rb + rx))
        return t, 2 * (rb + rx), states
    return None


def _radius_sum(
    comp: Any, states: dict[str, int] | None, extra: dict[str, float], missing: set[str]
) -> tuple[float | None, float | None]:
    """`sum_el r_el n_el^(1/3)` with Shannon radii near 6-fold and with atomic radii."""
    ionic: float | None = 0.0
    atomic: float | None = 0.0
    for el, n in comp.items():
        r = None if states is None else _shannon(el, states[el.symbol], 6, extra, missing)
        ionic = None if r is None or ionic is None else ionic + r * n ** (1 / 3)
        ra = el.atomic_radius
        atomic = None if ra is None or atomic is None else atomic + float(ra) * n ** (1 / 3)
    return ionic, atomic


def _prototype_radius_sum(
    p: _Prototype, extra: dict[str, float], missing: set[str]
) -> tuple[float | None, float | None]:
    """The prototype's own `_radius_sum`, with its own guessed oxidation states."""
    if any(sym is None for sym in p.own):
        return None, None
    comp = p.structure.composition.element_composition
    return _radius_sum(comp, _integer_guess(comp.oxi_state_guesses()), extra, missing)


def _rls_volume(
    p: _Prototype,
    ref: tuple[float | None, float | None],
    comp: Any,
    states: dict[str, int] | None,
    extra: dict[str, float],
    missing: set[str],
) -> tuple[float | None, bool]:
    """Reference lattice scaling against the prototype: `(volume, True)` from ionic radii when
    both sides have them, else `(volume, False)` from atomic radii, `(None, False)` if neither."""
    new_i, new_a = _radius_sum(comp, states, extra, missing)
    ref_i, ref_a = ref
    if new_i is not None and ref_i is not None:
        return float(p.structure.volume * (new_i / ref_i) ** 3), True
    if new_a is not None and ref_a is not None:
        return float(p.structure.volume * (new_a / ref_a) ** 3), False
    return None, False


def _site_order_formula(species: list[str]) -> str:
    """The reduced formula with elements in site order (`PbTiO3`, not pymatgen's `TiPbO3`)."""
    counts = Counter(species)
    g = math.gcd(*counts.values())
    return "".join(f"{el}{n // g if n // g > 1 else ''}" for el, n in counts.items())


def _deduplicate(kept: list[tuple[str, str, Any]], dropped: Counter[str]) -> list[tuple[str, Any]]:
    """Keep the first structure of each StructureMatcher group within a reduced formula; key
    them `formula-prototype[-n]`."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher()
    by_formula: dict[str, list[Any]] = {}
    out: list[tuple[str, Any]] = []
    used: Counter[str] = Counter()
    for formula, key_formula, s in kept:
        group = by_formula.setdefault(formula, [])
        if any(matcher.fit(other, s) for other in group):
            dropped["duplicate (StructureMatcher)"] += 1
            continue
        group.append(s)
        base = f"{key_formula}-{s.properties['prototype']}"
        used[base] += 1
        out.append((base if used[base] == 1 else f"{base}-{used[base]}", s))
    return out
