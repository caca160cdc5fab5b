"""Screening throughput: how fast a surrogate scores a composition pool (mean and sigma).

The pool is a chemical space enumerated lazily (`loop.chemspace.ChemicalSpace`) and featurized
in chunks, so a pool of millions never sits in memory whole. The networks are fitted briefly on a
few pool rows with random targets: throughput does not depend on what the weights learned, and
the measurement needs no data set. The published reference is ElemNet's 25,000 compositions in
9.28 s (2.7k per second) for one network (Jha et al. 2018).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from loop.chemspace import ChemicalSpace

__all__ = ["ScreeningResult", "screening_throughput", "elemnet_chunks"]


@dataclass(frozen=True)
class ScreeningResult:
    """One throughput measurement.

    Attributes:
        pool: Compositions scored.
        members: Networks (or dropout masks) evaluated per composition.
        featurize_seconds: Enumeration and featurization time.
        predict_seconds: Time for the posterior mean and standard deviation of the whole pool.
        per_second: Compositions per second (mean and sigma of the whole model).
        per_member_per_second: Compositions times members per second (one network's rate).
        parameters: Weights of the model.
        device: Where it ran.
    """

    surrogate: str
    options: dict[str, Any]
    pool: int
    members: int
    featurize_seconds: float
    predict_seconds: float
    per_second: float
    per_member_per_second: float
    parameters: int
    device: str
    hardware: str


def elemnet_chunks(space: ChemicalSpace, n: int, chunk: int) -> list[torch.Tensor]:
    """The first `n` compositions of `space` as float32 chunks of at most `chunk` rows in
    ElemNet's 86-element layout."""
    import torch

    from surrogates.featurizers import ELEMNET_ELEMENTS

    index = {e: i for i, e in enumerate(ELEMNET_ELEMENTS)}
    cols = torch.tensor([index[e] for e in space.elements])
    chunks: list[torch.Tensor] = []
    it = iter(space)
    left = n
    while left > 0:
        rows = list(itertools.islice(it, min(chunk, left)))
        F = torch.tensor([[fr[e] for e in space.elements] for _, fr in rows])
        X = torch.zeros(len(rows), len(ELEMNET_ELEMENTS))
        X[:, cols] = F
        chunks.append(X)
        left -= len(rows)
    return chunks


def screening_throughput(
    surrogate: str,
    options: dict[str, Any],
    *,
    elements: list[str],
    pool_size: int,
    max_components: int = 4,
    step: float = 0.05,
    chunk: int = 65536,
    device: str | None = None,
    seed: int = 0,
) -> ScreeningResult:
    """Score the first `pool_size` compositions of a chemical space and time it.

    Raises:
        ValueError: A pool smaller than asked (the space is too small) or bad options.
    """
    import torch

    from loop.benchmark.surrogate import hardware
    from loop.chemspace import ChemicalSpace
    from surrogates import load_builtin, make_surrogate
    from surrogates.featurizers import ELEMNET_ELEMENTS
    from surrogates.training import pick_device

    dev = pick_device(device)
    load_builtin()
    sur = make_surrogate(surrogate, options)
    space = ChemicalSpace(
        tuple(elements),
        step=step,
        min_components=1,
        max_components=min(max_components, len(elements)),
    )
    if space.count < pool_size:
        raise ValueError(
            f"the chemical space holds {space.count:,} compositions, fewer than the pool of "
            f"{pool_size:,}; add elements or use a smaller step"
        )
    t0 = time.perf_counter()
    chunks = elemnet_chunks(space, pool_size, chunk)
    featurize_seconds = time.perf_counter() - t0

    g = torch.Generator().manual_seed(seed)
    Xfit = chunks[0][:64]
    Yfit = torch.randn(Xfit.shape[0], 1, generator=g)
    bounds = torch.stack([torch.zeros(Xfit.shape[1]), torch.ones(Xfit.shape[1])])
    fit = sur.fit(
        Xfit, Yfit, bounds=bounds, seed=seed, input_names=list(ELEMNET_ELEMENTS), device=dev
    )
    model = fit.model
    members = int(getattr(model, "num_members", 1))
    # warm-up pass (allocations, kernel selection), not timed
    with torch.no_grad():
        model.posterior(chunks[0][:256].to(dev))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    with torch.no_grad():
        for X in chunks:
            post = model.posterior(X.to(dev))
            mean, sd = post.mean, post.variance.sqrt()
            del mean, sd
    if dev.type == "cuda":
        torch.cuda.synchronize()
    predict_seconds = time.perf_counter() - t1
    return ScreeningResult(
        surrogate=surrogate,
        options=dict(options),
        pool=pool_size,
        members=members,
        featurize_seconds=round(featurize_seconds, 3),
        predict_seconds=round(predict_seconds, 3),
        per_second=round(pool_size / predict_seconds, 1),
        per_member_per_second=round(pool_size * members / predict_seconds, 1),
        parameters=sum(p.numel() for p in model.parameters()),
        device=str(dev),
        hardware=hardware(str(dev))["summary"],
    )
