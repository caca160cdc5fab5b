"""Proposal latency: one model-based round against pool size, batch size and history.

Each configuration fits the surrogate on `n` measurements, then picks a batch of `q` from a pool
of `N` candidates twice in the same process: with the planner's pool optimizer
(`acquisition.select_from_pool`, what `loop propose` runs) and, where it finishes in reasonable
time, with BoTorch's sequential greedy `optimize_acqf_discrete` on the same acquisition function
(each ensemble member used once). For ensembles the two batches must be identical; the result
says whether they are.

Two spaces:
- `composition`: ElemNet's 86 element fractions. Measurements are OQMD compositions with their
  formation enthalpies (objective: minimize), the pool is a chemical space enumerated on a
  fraction grid (hypothetical compositions, as in a screening campaign).
- `box`: the 6-dimensional unit box with the Hartmann-6 function (maximize the negated value), a
  scrambled Sobol pool; the shape of a process-parameter campaign.

`continuous_latency` times the continuous case instead: the same box without a pool, the batch
found by `loop.engine.choose_in_space` (gradient ascent from the best of 512 Sobol points, what
`loop propose` runs), the figure Ax reports per proposal for small continuous problems.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProposeTiming", "ContinuousTiming", "propose_latency", "continuous_latency", "SPACES"]

SPACES = ("composition", "box")
#: Elements of the composition pool's chemical space (enough for a million compositions).
POOL_ELEMENTS = (
    "Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "Al", "Ga", "Si", "Ge", "Sn", "N", "P", "O", "S", "Se", "F", "Cl",
)  # fmt: skip
CHUNK = 16384


@dataclass
class ProposeTiming:
    """One configuration of the latency grid.

    Attributes:
        fit_seconds: Surrogate fit on the `n` measurements, from scratch.
        warm_fit_seconds: The same fit warm-started from a fit without the last 4 measurements
            (what a campaign's next round costs), or None for `n <= 8`.
        select_seconds: The planner's pool optimizer (prediction of the pool included).
        botorch_seconds: `optimize_acqf_discrete` on the same acquisition, or None when skipped.
        speedup: `botorch_seconds / select_seconds`.
        same_batch: Whether both picked the same candidates (None when BoTorch was skipped).
        batch_value, botorch_batch_value: Where the batches differ (a GP's Monte Carlo samples
            differ between the two), each whole batch's acquisition value on one shared estimate
            with 4,096 samples, so the two can be compared.
        scored: Candidates scored by the batch criterion (a GP's shortlist, else all).
        max_rss_mb: The process's peak resident memory so far (an upper bound for this row).
    """

    space: str
    surrogate: str
    acquisition: str
    pool: int
    q: int
    n: int
    fit_seconds: float
    warm_fit_seconds: float | None
    select_seconds: float
    botorch_seconds: float | None
    speedup: float | None
    same_batch: bool | None
    batch_value: float | None
    botorch_batch_value: float | None
    scored: int
    samples: int
    max_rss_mb: float


def _hartmann6(X: Any) -> Any:
    import torch

    alpha = torch.tensor([1.0, 1.2, 3.0, 3.2], dtype=X.dtype)
    A = torch.tensor(
        [
            [10, 3, 17, 3.5, 1.7, 8],
            [0.05, 10, 17, 0.1, 8, 14],
            [3, 3.5, 1.7, 10, 17, 8],
            [17, 8, 0.05, 10, 0.1, 14],
        ],
        dtype=X.dtype,
    )
    P = 1e-4 * torch.tensor(
        [
            [1312, 1696, 5569, 124, 8283, 5886],
            [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 5743, 1091],
            [4047, 8828, 8732, 5743, 1091, 381],
        ],
        dtype=X.dtype,
    )
    inner = (A * (X.unsqueeze(-2) - P) ** 2).sum(-1)
    return -(alpha * torch.exp(-inner)).sum(-1)


def _box_data(n: int, pool: int, seed: int) -> tuple[Any, Any, list[Any]]:
    import torch
    from torch.quasirandom import SobolEngine

    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 6, generator=g, dtype=torch.double)
    Y = -_hartmann6(X).unsqueeze(-1)  # maximize -hartmann
    sob = SobolEngine(6, scramble=True, seed=seed + 1)
    chunks = [sob.draw(min(CHUNK, pool - lo)).double() for lo in range(0, pool, CHUNK)]
    return X, Y, chunks


def _composition_data(n: int, pool: int, seed: int, data: Path) -> tuple[Any, Any, list[Any]]:
    import numpy as np
    import torch

    from loop.benchmark.screening import elemnet_chunks
    from loop.benchmark.surrogate_data import load_composition_table
    from loop.chemspace import ChemicalSpace

    table = load_composition_table(
        data, input_column="formula", target_column="target", limit=n, limit_seed=seed
    )
    X = table.X.double()
    Y = -torch.as_tensor(np.asarray(table.y), dtype=torch.double).unsqueeze(-1)  # most stable
    space = ChemicalSpace(POOL_ELEMENTS, step=0.1, min_components=1, max_components=4)
    if space.count < pool:
        raise ValueError(f"the composition pool holds {space.count:,} compositions, not {pool:,}")
    # float32 chunks: the pool is the largest thing held
    return X, Y, elemnet_chunks(space, pool, CHUNK)


def propose_latency(
    *,
    space: str,
    surrogate: str,
    options: dict[str, Any],
    acquisition: str,
    pools: list[int],
    batches: list[int],
    histories: list[int],
    botorch_max_pool: int,
    botorch_max_q: int,
    data: Path | None,
    seed: int = 0,
    progress: Any = None,
) -> list[ProposeTiming]:
    """Run the latency grid (see the module docstring); one row per `(n, N, q)`.

    The pool of the largest size is built once; smaller pools are its first `N` candidates.
    """
    import torch

    from acquisition import (
        AcquisitionContext,
        build_acquisition,
        optimize_pool,
        select_from_pool,
    )
    from surrogates import load_builtin, make_surrogate

    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; known: {', '.join(SPACES)}")
    load_builtin()
    rows: list[ProposeTiming] = []
    big = max(pools)
    for n in histories:
        if space == "box":
            X, Y, chunks = _box_data(n, big, seed)
            bounds = torch.stack([torch.zeros(6), torch.ones(6)]).double()
            names = None
        else:
            assert data is not None
            X, Y, chunks = _composition_data(n, big, seed, data)
            bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).double()
            from surrogates.featurizers import ELEMNET_ELEMENTS

            names = list(ELEMNET_ELEMENTS)
        sur = make_surrogate(surrogate, options)
        t0 = time.perf_counter()
        fit = sur.fit(X, Y, bounds=bounds, seed=seed, input_names=names, device="cpu")
        fit_seconds = time.perf_counter() - t0
        model = fit.model
        # the refit a campaign does after a few new results: warm start from the fit without them
        warm_seconds = None
        if n > 8:
            prev = sur.fit(
                X[:-4], Y[:-4], bounds=bounds, seed=seed, input_names=names, device="cpu"
            )
            t0 = time.perf_counter()
            sur.fit(X, Y, bounds=bounds, seed=seed, input_names=names, device="cpu",
                    warm_start=prev.state)  # fmt: skip
            warm_seconds = round(time.perf_counter() - t0, 3)
        for N in sorted(pools):
            pool_chunks = _first(chunks, N)
            for q in sorted(batches):
                ctx = AcquisitionContext(X_baseline=X, Y=Y, seed=seed)
                acqf = build_acquisition(acquisition, model, ctx)
                t1 = time.perf_counter()
                sel = select_from_pool(acqf, model, iter(pool_chunks), q, seed=seed)
                select_seconds = time.perf_counter() - t1
                bt = None
                same = None
                ours_v = theirs_v = None
                if N <= botorch_max_pool and q <= botorch_max_q:
                    choices = torch.cat(pool_chunks).double()
                    acqf = build_acquisition(acquisition, model, ctx)
                    t2 = time.perf_counter()
                    idx, _ = optimize_pool(acqf, choices, q, max_batch_size=CHUNK)
                    bt = time.perf_counter() - t2
                    same = sorted(idx.tolist()) == sorted(sel.indices)
                    if not same:
                        # score both batches jointly on one finer estimate of the acquisition
                        ref = build_acquisition(
                            acquisition, model, ctx, {"mc_samples": 4096}
                            if acquisition in ("qlognei", "qlogei", "qucb") else None
                        )  # fmt: skip
                        with torch.no_grad():
                            ours_v = float(ref(choices[sel.indices].unsqueeze(0)))
                            theirs_v = float(ref(choices[idx].unsqueeze(0)))
                    del choices
                row = ProposeTiming(
                    space=space,
                    surrogate=surrogate,
                    acquisition=acquisition,
                    pool=N,
                    q=q,
                    n=n,
                    fit_seconds=round(fit_seconds, 3),
                    warm_fit_seconds=warm_seconds,
                    select_seconds=round(select_seconds, 3),
                    botorch_seconds=None if bt is None else round(bt, 3),
                    speedup=None if bt is None else round(bt / select_seconds, 1),
                    same_batch=same,
                    batch_value=None if ours_v is None else round(ours_v, 4),
                    botorch_batch_value=None if theirs_v is None else round(theirs_v, 4),
                    scored=sel.n_scored,
                    samples=sel.samples,
                    max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                )
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


@dataclass
class ContinuousTiming:
    """One continuous round: fit and batch search timed apart, `repeats` rounds in a row.

    Attributes:
        fit_seconds: Median surrogate fit over the repeats.
        select_seconds: Median batch search (`choose_in_space`) over the repeats.
        round_seconds: Median of fit plus search.
    """

    surrogate: str
    acquisition: str
    d: int
    n: int
    q: int
    repeats: int
    fit_seconds: float
    select_seconds: float
    round_seconds: float


def continuous_latency(
    *,
    surrogate: str,
    options: dict[str, Any],
    acquisition: str,
    batches: list[int],
    histories: list[int],
    repeats: int = 5,
    seed: int = 0,
) -> list[ContinuousTiming]:
    """Fit on `n` Hartmann-6 measurements and search the 6-d box for `q` points, `repeats` times
    (different measurement draws); medians per `(n, q)`."""
    import statistics

    import torch

    from loop.engine import choose_in_space
    from loop.space import DesignSpace
    from loop.spec import parse_spec
    from surrogates import load_builtin, make_surrogate

    load_builtin()
    out = []
    for n in histories:
        for q in batches:
            spec = parse_spec(
                {
                    "name": "bench",
                    "budget": 10**6,
                    "batch_size": q,
                    "parameters": [
                        {"type": "float", "name": f"x{i}", "low": 0.0, "high": 1.0}
                        for i in range(6)
                    ],
                    "objectives": [{"name": "y", "direction": "maximize"}],
                    "model": {
                        "surrogate": surrogate,
                        "acquisition": acquisition,
                        "surrogate_options": dict(options),
                    },
                },
                "benchmark",
            )
            space = DesignSpace(spec, None)
            fits, sels = [], []
            for r in range(repeats):
                g = torch.Generator().manual_seed(seed + r)
                X = torch.rand(n, 6, generator=g, dtype=torch.double)
                Y = -_hartmann6(X).unsqueeze(-1)
                t0 = time.perf_counter()
                fit = make_surrogate(surrogate, options).fit(
                    X, Y, bounds=space.bounds(), seed=seed + r, input_names=space.columns
                )
                t1 = time.perf_counter()
                choose_in_space(spec, space, fit.model, X, Y, None, q, seed=seed + r)
                t2 = time.perf_counter()
                fits.append(t1 - t0)
                sels.append(t2 - t1)
            out.append(
                ContinuousTiming(
                    surrogate=surrogate,
                    acquisition=acquisition,
                    d=6,
                    n=n,
                    q=q,
                    repeats=repeats,
                    fit_seconds=round(statistics.median(fits), 3),
                    select_seconds=round(statistics.median(sels), 3),
                    round_seconds=round(
                        statistics.median([a + b for a, b in zip(fits, sels, strict=True)]), 3
                    ),
                )
            )
    return out


def _first(chunks: list[Any], n: int) -> list[Any]:
    """The first `n` rows of a chunked pool, as chunks."""
    out = []
    left = n
    for c in chunks:
        if left <= 0:
            break
        out.append(c[: min(left, c.shape[0])])
        left -= c.shape[0]
    return out


def describe(rows: list[ProposeTiming]) -> str:
    """One line per row, for the terminal."""
    lines = []
    for r in rows:
        diff = (
            f", batch value {r.batch_value} vs {r.botorch_batch_value}"
            if r.batch_value is not None
            else ""
        )
        bt = (
            f"botorch {r.botorch_seconds} s ({r.speedup}x, same batch: {r.same_batch}{diff})"
            if r.botorch_seconds is not None
            else "botorch skipped"
        )
        lines.append(
            f"{r.space} {r.surrogate} {r.acquisition} n={r.n} pool={r.pool:,} q={r.q}: fit "
            f"{r.fit_seconds} s (warm {r.warm_fit_seconds} s), select {r.select_seconds} s, "
            f"{bt}, peak {r.max_rss_mb:.0f} MB"
        )
    return "\n".join(lines)
