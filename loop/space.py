"""Design spaces: turn parameter dicts into model inputs and back, and fill a space evenly.

A parameter dict is flat and keyed by column name: floats and ints by parameter name,
categoricals by parameter name (the choice), compositions by element symbol (the fraction).
The encoding is raw values (log10 for log-scale parameters), one-hot for categoricals and plain
fractions for compositions, so the composition's sum constraint stays linear. torch is imported
only when an encoding is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loop.spec import (
    CampaignSpec,
    CategoricalParameter,
    CompositionParameter,
    FloatParameter,
    IntParameter,
)

if TYPE_CHECKING:
    import torch

__all__ = ["DesignSpace", "input_columns", "check_params", "as_float"]


def input_columns(spec: CampaignSpec) -> list[str]:
    """The flat column names of a parameter dict, in spec order."""
    cols: list[str] = []
    for p in spec.parameters:
        if isinstance(p, CompositionParameter):
            cols += list(p.elements)
        else:
            cols.append(p.name)
    return cols


def check_params(spec: CampaignSpec, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Coerce and validate one parameter dict against the spec.

    Returns:
        The coerced dict (floats, ints, strings) and a list of problems, each
        `(column, message)` joined as "column: message".
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    for p in spec.parameters:
        if isinstance(p, CompositionParameter):
            fracs: dict[str, float] = {}
            for el in p.elements:
                v = as_float(params.get(el))
                if v is None:
                    problems.append(
                        f"{el}: not a number ({params.get(el)!r}); give the fraction "
                        f"of {el} in '{p.name}'"
                    )
                    continue
                if not (p.lower(el) - 1e-9 <= v <= p.upper(el) + 1e-9):
                    problems.append(
                        f"{el}: {v:g} is outside [{p.lower(el):g}, {p.upper(el):g}], "
                        f"the bounds of {el} in '{p.name}'"
                    )
                fracs[el] = v
            if len(fracs) == len(p.elements):
                total = sum(fracs.values())
                if abs(total - p.total) > 1e-3 * max(1.0, p.total):
                    problems.append(
                        f"{'+'.join(p.elements)}: fractions sum to {total:g}, not "
                        f"{p.total:g}; normalise the composition '{p.name}'"
                    )
            out.update(fracs)
        elif isinstance(p, CategoricalParameter):
            v = params.get(p.name)
            s = "" if v is None else str(v).strip()
            if s not in p.choices:
                problems.append(f"{p.name}: {v!r} is not one of {p.choices}")
            out[p.name] = s
        else:
            v = as_float(params.get(p.name))
            if v is None:
                problems.append(f"{p.name}: not a number ({params.get(p.name)!r})")
                continue
            if isinstance(p, IntParameter):
                if abs(v - round(v)) > 1e-9:
                    problems.append(f"{p.name}: {v:g} is not an integer")
                v = int(round(v))
            if not (
                p.low - 1e-9 * max(1.0, abs(p.low)) <= v <= p.high + 1e-9 * max(1.0, abs(p.high))
            ):
                problems.append(f"{p.name}: {v:g} is outside the bounds [{p.low:g}, {p.high:g}]")
            out[p.name] = v
    return out, problems


def as_float(v: Any) -> float | None:
    """A finite float from a cell or JSON value, or None."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
    except (ValueError, OverflowError, TypeError):  # "x", a 400-digit integer, ...
        return None
    return f if math.isfinite(f) else None


def _project(x: list[float], lo: list[float], hi: list[float], total: float) -> list[float]:
    """Nearest-in-spirit point of `{lo <= x <= hi, sum(x) = total}`: clip, then move the
    surplus or deficit onto the coordinates that still have room, in proportion to that room."""
    y = [min(max(v, a), b) for v, a, b in zip(x, lo, hi)]
    for _ in range(50):
        gap = total - sum(y)
        if abs(gap) <= 1e-13 * max(1.0, total):
            break
        room = [(b - v) if gap > 0 else (v - a) for v, a, b in zip(y, lo, hi)]
        free = sum(room)
        if free <= 0:
            break
        step = min(1.0, abs(gap) / free)
        y = [v + (step * r if gap > 0 else -step * r) for v, r in zip(y, room)]
        y = [min(max(v, a), b) for v, a, b in zip(y, lo, hi)]
    return y


@dataclass(frozen=True)
class _Block:
    """Where one parameter sits in the encoded vector."""

    param: Any
    start: int
    width: int


class DesignSpace:
    """Encoding, decoding and space-filling sampling for one campaign.

    Args:
        spec: The campaign spec (with pool parameters already resolved).
        candidates: The pool's parameter dicts in pool order, for pool campaigns.
    """

    def __init__(
        self,
        spec: CampaignSpec,
        candidates: list[dict[str, Any]] | None = None,
        *,
        pool_X: torch.Tensor | None = None,
    ) -> None:
        self.spec = spec
        self.candidates = candidates
        self._pool_X = pool_X
        blocks: list[_Block] = []
        start = 0
        for p in spec.parameters:
            width = (
                len(p.choices)
                if isinstance(p, CategoricalParameter)
                else len(p.elements)
                if isinstance(p, CompositionParameter)
                else 1
            )
            blocks.append(_Block(p, start, width))
            start += width
        self._blocks = blocks
        self.dim = start
        self.columns = input_columns(spec)

    @property
    def encoded_pool(self) -> torch.Tensor:
        """`N x d` encoding of the pool (given, or encoded from `candidates` once)."""
        if self._pool_X is None:
            assert self.candidates is not None, "a pool space needs candidates or pool_X"
            self._pool_X = self.encode(self.candidates)
        return self._pool_X

    @property
    def has_categoricals(self) -> bool:
        return any(isinstance(b.param, CategoricalParameter) for b in self._blocks)

    def categorical_blocks(self) -> list[tuple[int, int]]:
        """`(start, width)` of each one-hot block in the encoding."""
        return [
            (b.start, b.width) for b in self._blocks if isinstance(b.param, CategoricalParameter)
        ]

    def bounds(self) -> torch.Tensor:
        """`2 x d` lower and upper bounds of the encoding."""
        import torch

        lo: list[float] = []
        hi: list[float] = []
        for b in self._blocks:
            p = b.param
            if isinstance(p, (FloatParameter, IntParameter)):
                if p.log:
                    lo.append(math.log10(p.low))
                    hi.append(math.log10(p.high))
                else:
                    lo.append(float(p.low))
                    hi.append(float(p.high))
            elif isinstance(p, CategoricalParameter):
                lo += [0.0] * b.width
                hi += [1.0] * b.width
            else:
                lo += [p.lower(e) for e in p.elements]
                hi += [p.upper(e) for e in p.elements]
        return torch.tensor([lo, hi], dtype=torch.double)

    def equality_constraints(self) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """BoTorch equality constraints: each composition sums to its total."""
        import torch

        out = []
        for b in self._blocks:
            if isinstance(b.param, CompositionParameter):
                idx = torch.arange(b.start, b.start + b.width)
                out.append((idx, torch.ones(b.width, dtype=torch.double), float(b.param.total)))
        return out

    def _column(self, name: str) -> int:
        """The encoded column of a float parameter or a composition element."""
        for b in self._blocks:
            p = b.param
            if isinstance(p, CompositionParameter) and name in p.elements:
                return b.start + p.elements.index(name)
            if p.name == name:
                return b.start
        raise KeyError(name)

    def inequality_constraints(self) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """BoTorch inequality constraints (`sum coef x >= rhs`) of the spec's linear constraints."""
        import torch

        out = []
        for lc in self.spec.linear_constraints:
            idx = torch.tensor([self._column(n) for n in lc.terms])
            coef = torch.tensor(list(lc.terms.values()), dtype=torch.double)
            if lc.lower is not None:
                out.append((idx, coef, float(lc.lower)))
            if lc.upper is not None:
                out.append((idx, -coef, -float(lc.upper)))
        return out

    def meets_linear_constraints(self, row: dict[str, Any], tol: float = 1e-6) -> bool:
        """Whether a parameter row meets every linear constraint (within `tol` of its scale)."""
        for lc in self.spec.linear_constraints:
            v = sum(c * float(row[n]) for n, c in lc.terms.items())
            scale = tol * max(1.0, sum(abs(c * float(row[n])) for n, c in lc.terms.items()))
            if lc.lower is not None and v < lc.lower - scale:
                return False
            if lc.upper is not None and v > lc.upper + scale:
                return False
        return True

    def encode(self, rows: list[dict[str, Any]]) -> torch.Tensor:
        """`n x d` encoding of parameter dicts."""
        import torch

        # rows as Python lists, one tensor at the end: setting tensor items one at a time costs
        # about a microsecond each (25 s for a 450k-candidate pool)
        out: list[list[float]] = []
        for row in rows:
            x: list[float] = []
            for b in self._blocks:
                p = b.param
                if isinstance(p, (FloatParameter, IntParameter)):
                    v = float(row[p.name])
                    x.append(math.log10(v) if p.log else v)
                elif isinstance(p, CategoricalParameter):
                    hot = [0.0] * b.width
                    hot[p.choices.index(str(row[p.name]))] = 1.0
                    x.extend(hot)
                else:
                    x.extend([float(row[el]) for el in p.elements])
            out.append(x)
        if not out:
            return torch.zeros(0, self.dim, dtype=torch.double)
        return torch.tensor(out, dtype=torch.double)

    def decode(self, X: torch.Tensor) -> list[dict[str, Any]]:
        """Parameter dicts from an `n x d` encoding (ints rounded, one-hots resolved)."""
        rows = []
        for x in X.detach().cpu().double().tolist():
            row: dict[str, Any] = {}
            for b in self._blocks:
                p = b.param
                if isinstance(p, (FloatParameter, IntParameter)):
                    v = 10 ** x[b.start] if p.log else x[b.start]
                    v = min(max(v, p.low), p.high)
                    row[p.name] = int(round(v)) if isinstance(p, IntParameter) else float(v)
                elif isinstance(p, CategoricalParameter):
                    seg = x[b.start : b.start + b.width]
                    row[p.name] = p.choices[max(range(b.width), key=seg.__getitem__)]
                else:
                    fr = _project(
                        x[b.start : b.start + b.width],
                        [p.lower(e) for e in p.elements],
                        [p.upper(e) for e in p.elements],
                        p.total,
                    )
                    row.update({e: fr[j] for j, e in enumerate(p.elements)})
            rows.append(row)
        return rows

    def span(self) -> torch.Tensor:
        """`d` widths of the encoding's bounds, to scale distances."""
        b = self.bounds()
        return (b[1] - b[0]).clamp_min(1e-12)

    # -- space-filling design -----------------------------------------------------------------
    def sobol(self, n: int, *, seed: int, skip: int = 0) -> list[dict[str, Any]]:
        """`n` space-filling points (scrambled Sobol; compositions via a Sobol-driven simplex map).

        Args:
            n: How many points.
            seed: Scrambling seed (fixed per campaign so later batches continue the sequence).
            skip: How many points of the sequence earlier batches already used.
        """
        import torch
        from torch.quasirandom import SobolEngine

        # one Sobol dimension per float/int/categorical, k per composition of k elements
        dims = sum(
            b.width if isinstance(b.param, CompositionParameter) else 1 for b in self._blocks
        )
        eng = SobolEngine(dimension=max(dims, 1), scramble=True, seed=seed)
        if skip:
            eng.fast_forward(skip)
        out: list[dict[str, Any]] = []
        # compositions with tight maxima reject some points; draw until n are accepted
        for _ in range(200):
            U = eng.draw(max(n, 8), dtype=torch.double)
            for u in U.tolist():
                row = self._from_unit(u)
                if row is not None and self.meets_linear_constraints(row):
                    out.append(row)
                    if len(out) == n:
                        return out
        from loop.errors import LoopError

        raise LoopError(
            f"could not draw {n} points that meet the composition bounds and linear constraints "
            f"of '{self.spec.name}' (accepted {len(out)})",
            "loosen the min/max fractions of the composition or the linear_constraints",
        )

    def _from_unit(self, u: list[float]) -> dict[str, Any] | None:
        row: dict[str, Any] = {}
        k = 0
        for b in self._blocks:
            p = b.param
            if isinstance(p, CompositionParameter):
                w = [-math.log(max(1.0 - x, 1e-12)) for x in u[k : k + b.width]]
                k += b.width
                s = sum(w) or 1.0
                free = p.total - sum(p.lower(e) for e in p.elements)
                for j, e in enumerate(p.elements):
                    v = p.lower(e) + free * w[j] / s
                    if v > p.upper(e) + 1e-12:
                        return None
                    row[e] = v
                continue
            x = u[k]
            k += 1
            if isinstance(p, CategoricalParameter):
                row[p.name] = p.choices[min(int(x * len(p.choices)), len(p.choices) - 1)]
            elif isinstance(p, IntParameter):
                if p.log:
                    v = 10 ** (math.log10(p.low) + x * (math.log10(p.high) - math.log10(p.low)))
                    row[p.name] = int(min(p.high, max(p.low, round(v))))
                else:  # each of the high-low+1 values gets an equal share of [0, 1)
                    row[p.name] = int(min(p.high, math.floor(p.low + x * (p.high - p.low + 1))))
            else:
                lo, hi = (math.log10(p.low), math.log10(p.high)) if p.log else (p.low, p.high)
                v = lo + x * (hi - lo)
                row[p.name] = float(10**v if p.log else v)
        return row

    def nearest_available(self, points: list[dict[str, Any]], available: list[int]) -> list[int]:
        """For each point, the nearest pool candidate among `available` (each used once)."""
        import torch

        free = list(available)
        if not free:
            return []
        span = self.span()
        C = self.encoded_pool[torch.tensor(free, dtype=torch.long)] / span
        P = self.encode(points) / span
        taken: list[int] = []
        mask = torch.zeros(len(free), dtype=torch.bool)
        for p in P:
            d = ((C - p) ** 2).sum(-1)
            d[mask] = float("inf")
            j = int(torch.argmin(d))
            if math.isinf(float(d[j])):
                break
            mask[j] = True
            taken.append(free[j])
        return taken
