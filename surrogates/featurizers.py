"""Pure featurizers: compositions in, tensors out.

`ELEMNET_ELEMENTS` is the input layout of ElemNet (Jha et al. 2018): the 86 elements from H to Pu
in atomic-number order, without the noble gases He, Ne, Ar, Rn and the short-lived Po, At, Fr,
Ra. A composition becomes the vector of its element fractions over that list (`86`, summing to 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "ELEMNET_ELEMENTS",
    "CompositionError",
    "parse_composition",
    "composition_fractions",
    "featurize_formulas",
    "element_map",
]

#: ElemNet's 86 input elements, H to Pu in atomic-number order.
ELEMNET_ELEMENTS: tuple[str, ...] = tuple(
    "H Li Be B C N O F Na Mg Al Si P S Cl K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy "
    "Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Ac Th Pa U Np Pu".split()
)
assert len(ELEMNET_ELEMENTS) == 86
_INDEX = {e: i for i, e in enumerate(ELEMNET_ELEMENTS)}


class CompositionError(ValueError):
    """A formula that cannot be featurized; `reason` says why and how to fix it."""

    def __init__(self, formula: str, reason: str) -> None:
        super().__init__(f"{formula!r}: {reason}")
        self.formula = formula
        self.reason = reason


def parse_composition(formula: str, elements: Sequence[str] = ELEMNET_ELEMENTS) -> Any:
    """A pymatgen `Composition`, checked: real elements only, all of them in `elements`.

    Raises:
        CompositionError: Unparseable text, an unknown symbol, an element outside `elements`,
            or an empty or non-positive amount.
    """
    from pymatgen.core import Composition
    from pymatgen.core.periodic_table import Element

    text = str(formula).strip()
    if not text:
        raise CompositionError(text, "the formula is empty; give one such as 'Fe2O3'")
    try:
        comp = Composition(text)
    except (ValueError, KeyError, TypeError) as err:
        raise CompositionError(
            text, f"not a chemical formula ({err}); write it as 'Fe2O3' or 'Fe0.4Ni0.6'"
        ) from None
    allowed = set(elements)
    for el, amt in comp.items():
        # pymatgen accepts unknown symbols as dummy species (`Xx2O`): reject them here
        if not isinstance(el, Element):
            raise CompositionError(text, f"'{el}' is not a chemical element")
        if el.symbol not in allowed:
            raise CompositionError(
                text,
                f"element {el.symbol} is outside the model's {len(allowed)} elements "
                "(ElemNet leaves out He, Ne, Ar, Po, At, Rn, Fr, Ra and everything past Pu); "
                "drop the row",
            )
        if amt <= 0:
            raise CompositionError(text, f"amount of {el.symbol} is {amt:g}; amounts must be > 0")
    if comp.num_atoms <= 0:
        raise CompositionError(text, "the formula holds no atoms")
    return comp


def composition_fractions(
    formula: str, elements: Sequence[str] = ELEMNET_ELEMENTS
) -> dict[str, float]:
    """Element fractions of a formula (summing to 1), checked against `elements`."""
    comp = parse_composition(formula, elements)
    total = float(comp.num_atoms)
    return {el.symbol: float(amt) / total for el, amt in comp.items()}


def featurize_formulas(
    formulas: Sequence[str], elements: Sequence[str] = ELEMNET_ELEMENTS
) -> torch.Tensor:
    """`n x len(elements)` float32 element-fraction vectors of `formulas`.

    Raises:
        CompositionError: For the first formula that fails; its message names the formula. Use
            `composition_fractions` row by row to collect every bad row instead.
    """
    import torch

    index = (
        _INDEX if tuple(elements) == ELEMNET_ELEMENTS else {e: i for i, e in enumerate(elements)}
    )
    X = torch.zeros(len(formulas), len(index), dtype=torch.float32)
    for i, f in enumerate(formulas):
        for sym, frac in composition_fractions(f, elements).items():
            X[i, index[sym]] = frac
    return X


def element_map(input_names: Sequence[str]) -> torch.Tensor:
    """`d x 86` 0/1 matrix taking `d` named element-fraction columns to ElemNet's layout.

    Raises:
        CompositionError: A name that is not one of ElemNet's 86 element symbols.
    """
    import torch

    M = torch.zeros(len(input_names), len(ELEMNET_ELEMENTS), dtype=torch.float32)
    for j, name in enumerate(input_names):
        if name not in _INDEX:
            raise CompositionError(
                name,
                "ElemNet inputs must be element-fraction columns named by element symbol "
                f"(one of {len(ELEMNET_ELEMENTS)}, H to Pu without noble gases He-Rn and Po, At, "
                "Fr, Ra)",
            )
        M[j, _INDEX[name]] = 1.0
    return M
