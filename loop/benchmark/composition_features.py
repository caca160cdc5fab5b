"""Composition descriptors ("Magpie-lite") for the random-forest baseline.

After Ward et al. 2016 (npj Comput. Mater. 2, 16028): for each element property, statistics of
the property over the elements of a composition weighted by their fractions, plus norms of the
fraction vector. Built from pymatgen's element data for ElemNet's 86 elements:

- properties (`ELEMENT_PROPERTIES`): atomic number, Mendeleev number, atomic mass, periodic row
  and group, Pauling electronegativity, atomic radius, melting point, molar volume, electron
  affinity, first ionization energy, and the valence electrons by block: `Ns`, `Np`, `Nd`, `Nf`
  (electrons in the `row` s and p shells, the `row - 1` d shell and the `row - 2` f shell, so
  Ga has 2/1/10/0 and Hf 2/0/2/14, as in Magpie's tables) and their sum `Nvalence`;
- per property: the fraction-weighted mean, the weighted average absolute deviation from it, the
  minimum, maximum and range over the present elements, and the value of the most abundant
  element (the first in ElemNet's order on a tie);
- the stoichiometric `L_p` norms of the fraction vector for p = 2, 3, 5, 7, 10, and the number of
  elements (the `L_0` norm).

Gaps in pymatgen's data (atomic radius of Kr and Xe) are filled with the mean of that property
over the other elements of the table; `ElementTable.filled` lists them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from surrogates.featurizers import ELEMNET_ELEMENTS

__all__ = [
    "ELEMENT_PROPERTIES",
    "STATISTICS",
    "NORMS",
    "ElementTable",
    "element_table",
    "feature_names",
    "composition_features",
    "features_for",
]

ELEMENT_PROPERTIES: tuple[str, ...] = (
    "Z",
    "mendeleev_no",
    "atomic_mass",
    "row",
    "group",
    "X",
    "atomic_radius",
    "melting_point",
    "molar_volume",
    "electron_affinity",
    "ionization_energy",
    "Ns",
    "Np",
    "Nd",
    "Nf",
    "Nvalence",
)
STATISTICS: tuple[str, ...] = ("mean", "avg_dev", "min", "max", "range", "mode")
NORMS: tuple[int, ...] = (2, 3, 5, 7, 10)

_CHUNK = 8192  # rows per block: a block's `rows x 86 x P` temporaries stay under ~100 MB


@dataclass(frozen=True)
class ElementTable:
    """Element properties of `elements`: `values` is `len(elements) x len(properties)` float64.

    Attributes:
        filled: Property name -> the elements whose missing value was set to the property mean.
    """

    elements: tuple[str, ...]
    properties: tuple[str, ...]
    values: np.ndarray
    filled: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.elements), len(self.properties))
        if self.values.shape != shape:
            raise ValueError(f"values have shape {self.values.shape}, expected {shape}")
        if not np.isfinite(self.values).all():
            raise ValueError("element table values must be finite")


def _valence(el: Any) -> tuple[float, float, float, float]:
    row = int(el.row)
    shells = {(n, orb): c for n, orb, c in el.full_electronic_structure}
    s = shells.get((row, "s"), 0)
    p = shells.get((row, "p"), 0)
    d = shells.get((row - 1, "d"), 0)
    f = shells.get((row - 2, "f"), 0)
    return float(s), float(p), float(d), float(f)


def _value(el: Any, prop: str) -> float | None:
    if prop in ("Ns", "Np", "Nd", "Nf", "Nvalence"):
        v = _valence(el)
        return sum(v) if prop == "Nvalence" else v[("Ns", "Np", "Nd", "Nf").index(prop)]
    try:
        raw = getattr(el, prop)
    except (AttributeError, ValueError, KeyError):
        return None
    if raw is None:
        return None
    x = float(raw)  # pymatgen's FloatWithUnit values are floats in their stated unit
    return x if np.isfinite(x) else None


@functools.cache
def element_table(elements: tuple[str, ...] = tuple(ELEMNET_ELEMENTS)) -> ElementTable:
    """The property table of `elements` from pymatgen, gaps filled with the property mean.

    Cached: it is built once per process (about 0.1 s).
    """
    from pymatgen.core.periodic_table import Element

    raw = np.full((len(elements), len(ELEMENT_PROPERTIES)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about estimated or missing data
        for i, sym in enumerate(elements):
            el = Element(sym)
            for j, prop in enumerate(ELEMENT_PROPERTIES):
                v = _value(el, prop)
                raw[i, j] = np.nan if v is None else v
    filled: dict[str, list[str]] = {}
    for j, prop in enumerate(ELEMENT_PROPERTIES):
        missing = np.isnan(raw[:, j])
        if missing.all():
            raise ValueError(f"pymatgen has no '{prop}' for any element")
        if missing.any():
            raw[missing, j] = np.nanmean(raw[:, j])
            filled[prop] = [elements[i] for i in np.flatnonzero(missing)]
    return ElementTable(tuple(elements), ELEMENT_PROPERTIES, raw, filled)


def feature_names(table: ElementTable) -> list[str]:
    """The names of `composition_features`' columns, in order."""
    names = [f"{prop}_{stat}" for prop in table.properties for stat in STATISTICS]
    return names + [f"L{p}_norm" for p in NORMS] + ["n_elements"]


def composition_features(fractions: Any, table: ElementTable) -> np.ndarray:
    """`n x F` float64 descriptors of `n x E` element fractions (`E = len(table.elements)`).

    Rows must sum to 1 (as `surrogates.featurizers.featurize_formulas` gives them);
    `F = 6 * len(table.properties) + len(NORMS) + 1`, named by `feature_names(table)`.
    """
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.ndim != 2 or frac.shape[1] != len(table.elements):
        raise ValueError(
            f"fractions must be `n x {len(table.elements)}`, got shape {tuple(frac.shape)}"
        )
    blocks = [_block(frac[i : i + _CHUNK], table.values) for i in range(0, len(frac), _CHUNK)]
    if not blocks:
        return np.zeros((0, len(feature_names(table))))
    return np.concatenate(blocks, axis=0)


def _block(frac: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Features of one block: `b x E` fractions, `E x P` property table -> `b x F`."""
    present = frac > 0  # `b x E`
    mean = frac @ T  # `b x P`
    # weighted average absolute deviation: sum_e f_e |T_ep - mean_p|
    avg_dev = np.einsum("be,bep->bp", frac, np.abs(T[None, :, :] - mean[:, None, :]))
    big = np.where(present[:, :, None], T[None, :, :], np.inf)
    lo = big.min(axis=1)
    hi = np.where(present[:, :, None], T[None, :, :], -np.inf).max(axis=1)
    mode = T[np.argmax(frac, axis=1)]  # argmax returns the first of tied maxima
    stats = np.stack([mean, avg_dev, lo, hi, hi - lo, mode], axis=2)  # `b x P x 6`
    norms = [np.sum(frac**p, axis=1) ** (1.0 / p) for p in NORMS]
    count = present.sum(axis=1).astype(np.float64)
    return np.concatenate([stats.reshape(len(frac), -1), np.stack([*norms, count], axis=1)], axis=1)


def features_for(fractions: Any, elements: Sequence[str] = ELEMNET_ELEMENTS) -> np.ndarray:
    """`composition_features` with the cached table of `elements`."""
    return composition_features(fractions, element_table(tuple(elements)))
