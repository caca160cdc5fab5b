"""Acquisition functions by name.

Each builder takes a fitted BoTorch model and the campaign's context and returns an
`AcquisitionFunction`. Builders import BoTorch lazily so the registry itself is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from botorch.acquisition import AcquisitionFunction
    from botorch.models.model import Model

__all__ = [
    "AcquisitionContext",
    "ACQUISITIONS",
    "register_acquisition",
    "build_acquisition",
    "UnknownAcquisitionError",
]


#: Default exploration weight of qUCB (BoTorch's `beta`). Chosen on the closed-loop benchmarks in
#: docs/benchmarks.md: beta = 1 reached 80% of the top-5% within half the pool on every seed of
#: the five Liang et al. sets, where 2 missed on the perovskite set and 0.5 on AutoAM.
UCB_BETA = 1.0
#: Measurement noise `explore` assumes for pending points and its own earlier picks, as a
#: fraction of the measured objective's standard deviation.
EXPLORE_NOISE = 0.01


class UnknownAcquisitionError(ValueError):
    """An unknown acquisition name or option."""


@dataclass
class AcquisitionContext:
    """What an acquisition function may need beyond the model.

    Attributes:
        X_baseline: `n x d` measured inputs.
        Y: `n x m` measured outputs (maximization sense for output 0).
        X_pending: `p x d` inputs proposed but not yet measured, or None.
        constraints: `(output index, lower, upper)` outcome constraints on the outputs after
            the objectives.
        seed: Seed for Monte Carlo samplers.
        n_objectives: Outputs `0..k-1` are objectives (maximization sense); the rest constrained.
        ref_point: Several objectives: the hypervolume reference per objective (maximization
            sense), `None` entries inferred from the measured front.
    """

    X_baseline: torch.Tensor
    Y: torch.Tensor
    X_pending: torch.Tensor | None = None
    constraints: list[tuple[int, float | None, float | None]] = field(default_factory=list)
    seed: int = 0
    n_objectives: int = 1
    ref_point: list[float | None] | None = None


Builder = Callable[["Model", AcquisitionContext, dict[str, Any]], "AcquisitionFunction"]
ACQUISITIONS: dict[str, Builder] = {}
_OPTIONS: dict[str, set[str]] = {}


def register_acquisition(
    name: str, options: set[str] | None = None
) -> Callable[[Builder], Builder]:
    """Decorator adding an acquisition builder under `name`, accepting `options`."""

    def deco(fn: Builder) -> Builder:
        if name in ACQUISITIONS:
            raise ValueError(f"acquisition '{name}' is registered twice")
        ACQUISITIONS[name] = fn
        _OPTIONS[name] = set(options or ())
        return fn

    return deco


#: Acquisitions that score several objectives at once.
MULTI_OBJECTIVE = {"qlognehvi"}


def build_acquisition(
    name: str, model: Model, ctx: AcquisitionContext, options: dict[str, Any] | None = None
) -> AcquisitionFunction:
    """Build the acquisition function called `name`."""
    check_acquisition(name, options)
    if ctx.n_objectives > 1 and name not in MULTI_OBJECTIVE:
        raise UnknownAcquisitionError(
            f"acquisition '{name}' scores one objective and the campaign has "
            f"{ctx.n_objectives}; use one of: {', '.join(sorted(MULTI_OBJECTIVE))}"
        )
    return ACQUISITIONS[name](model, ctx, dict(options or {}))


def check_acquisition(name: str, options: dict[str, Any] | None = None) -> None:
    """Raise `UnknownAcquisitionError` for an unknown name or option."""
    if name not in ACQUISITIONS:
        raise UnknownAcquisitionError(
            f"unknown acquisition '{name}'; known acquisitions: {', '.join(sorted(ACQUISITIONS))}"
        )
    unknown = set(options or {}) - _OPTIONS[name]
    if unknown:
        raise UnknownAcquisitionError(
            f"unknown option(s) {sorted(unknown)} for acquisition '{name}'; known: "
            f"{', '.join(sorted(_OPTIONS[name])) or '(none)'}"
        )


def _member_sampler(members: int, seed: int | None):  # type: ignore[no-untyped-def]
    """A sampler over an ensemble posterior that takes each member exactly once.

    BoTorch's `IndexSampler` draws members with replacement, so a 5-member ensemble scored with
    128 draws sees a noisy reweighting of its members; using each member once gives the exact
    ensemble mean and spread.
    """
    import torch
    from botorch.sampling.index_sampler import IndexSampler

    class MemberSampler(IndexSampler):
        def _construct_base_samples(self, posterior):  # type: ignore[no-untyped-def]
            shape = self.sample_shape + posterior.batch_shape
            if self.base_samples is None or self.base_samples.shape != shape:
                idx = torch.arange(posterior.ensemble_size, device=posterior.device)
                idx = idx.reshape(-1, *([1] * len(posterior.batch_shape))).expand(shape)
                self.register_buffer("base_samples", idx)

    return MemberSampler(sample_shape=torch.Size([members]), seed=seed)


def _sampler(model: Model, ctx: AcquisitionContext, options: dict[str, Any]):  # type: ignore[no-untyped-def]
    import torch
    from botorch.models.ensemble import EnsembleModel
    from botorch.sampling import SobolQMCNormalSampler

    members = getattr(model, "num_members", None)
    if isinstance(model, EnsembleModel) and isinstance(members, int):
        return _member_sampler(members, ctx.seed)
    return SobolQMCNormalSampler(
        sample_shape=torch.Size([int(options.get("mc_samples", 256))]), seed=ctx.seed
    )


def _objective_and_constraints(ctx: AcquisitionContext, m: int):  # type: ignore[no-untyped-def]
    """Output 0 is the objective; outputs 1.. are constrained (feasible where <= 0)."""
    if m == 1:
        return None, None
    from botorch.acquisition.objective import GenericMCObjective

    objective = GenericMCObjective(lambda Z, X=None: Z[..., 0])
    return objective, _constraint_callables(ctx)


def _constraint_callables(
    ctx: AcquisitionContext,
) -> list[Callable[[torch.Tensor], torch.Tensor]] | None:
    """BoTorch outcome constraints (feasible where `<= 0`) of the context's bounds."""
    cons: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for j, lo, hi in ctx.constraints:
        if hi is not None:
            cons.append(lambda Z, j=j, hi=hi: Z[..., j] - hi)
        if lo is not None:
            cons.append(lambda Z, j=j, lo=lo: lo - Z[..., j])
    return cons or None


@register_acquisition("qlognei", {"mc_samples", "prune_baseline"})
def _qlognei(model: Model, ctx: AcquisitionContext, options: dict[str, Any]) -> AcquisitionFunction:
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement

    objective, constraints = _objective_and_constraints(ctx, ctx.Y.shape[-1])
    # incremental=False: the default folds X_pending into the baseline and then drops it during
    # greedy batch optimization, so pending candidates would be proposed again
    return qLogNoisyExpectedImprovement(
        model=model,
        X_baseline=ctx.X_baseline,
        sampler=_sampler(model, ctx, options),
        objective=objective,
        constraints=constraints,
        X_pending=ctx.X_pending,
        prune_baseline=bool(options.get("prune_baseline", True)),
        incremental=False,
    )


@register_acquisition("qlogei", {"mc_samples"})
def _qlogei(model: Model, ctx: AcquisitionContext, options: dict[str, Any]) -> AcquisitionFunction:
    from botorch.acquisition.logei import qLogExpectedImprovement

    objective, constraints = _objective_and_constraints(ctx, ctx.Y.shape[-1])
    y = ctx.Y[..., 0]
    if constraints:
        feasible = _feasible(ctx)
        best = float(y[feasible].max()) if bool(feasible.any()) else float(y.min())
    else:
        best = float(y.max())
    return qLogExpectedImprovement(
        model=model,
        best_f=best,
        sampler=_sampler(model, ctx, options),
        objective=objective,
        constraints=constraints,
        X_pending=ctx.X_pending,
    )


@register_acquisition("qucb", {"mc_samples", "beta"})
def _qucb(model: Model, ctx: AcquisitionContext, options: dict[str, Any]) -> AcquisitionFunction:
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound

    objective, constraints = _objective_and_constraints(ctx, ctx.Y.shape[-1])
    if constraints:
        from botorch.acquisition.objective import ConstrainedMCObjective
        from botorch.acquisition.utils import get_infeasible_cost

        # samples that break a constraint score -M, below every plausible objective value, so
        # the upper bound of an infeasible candidate is pulled down by its infeasibility odds
        cost = get_infeasible_cost(ctx.X_baseline, model, lambda Z, X=None: Z[..., 0])
        objective = ConstrainedMCObjective(
            objective=lambda Z, X=None: Z[..., 0],
            constraints=constraints,
            infeasible_cost=cost.reshape(()),
        )
    return qUpperConfidenceBound(
        model=model,
        beta=float(options.get("beta", UCB_BETA)),
        sampler=_sampler(model, ctx, options),
        objective=objective,
        X_pending=ctx.X_pending,
    )


def _feasible(ctx: AcquisitionContext) -> torch.Tensor:
    import torch

    ok = torch.ones(ctx.Y.shape[0], dtype=torch.bool)
    for j, lo, hi in ctx.constraints:
        if lo is not None:
            ok &= ctx.Y[:, j] >= lo
        if hi is not None:
            ok &= ctx.Y[:, j] <= hi
    return ok


@register_acquisition("explore", {"mc_samples", "noise"})
def _explore(model: Model, ctx: AcquisitionContext, options: dict[str, Any]) -> AcquisitionFunction:
    from acquisition.explore import qPosteriorVariance

    objective, _ = _objective_and_constraints(ctx, ctx.Y.shape[-1])
    y = ctx.Y[:, 0]
    spread = float(y.std()) if y.numel() > 1 else 0.0
    # `noise` is the measurement noise assumed for pending points and earlier picks, as a
    # fraction of the measured objective's standard deviation
    noise = (float(options.get("noise", EXPLORE_NOISE)) * (spread if spread > 0 else 1.0)) ** 2
    return qPosteriorVariance(
        model=model,
        sampler=_sampler(model, ctx, options),
        noise=noise,
        objective=objective,
        X_pending=ctx.X_pending,
    )


@register_acquisition("thompson", set())
def _thompson(
    model: Model, ctx: AcquisitionContext, options: dict[str, Any]
) -> AcquisitionFunction:
    from acquisition.explore import ThompsonSampling

    _, constraints = _objective_and_constraints(ctx, ctx.Y.shape[-1])
    return ThompsonSampling(model, seed=ctx.seed, X_pending=ctx.X_pending, constraints=constraints)


@register_acquisition("qlognehvi", {"mc_samples", "prune_baseline"})
def _qlognehvi(
    model: Model, ctx: AcquisitionContext, options: dict[str, Any]
) -> AcquisitionFunction:
    """Log noisy expected hypervolume improvement over the objectives (outputs `0..k-1`), with
    outcome constraints as smoothed feasibility weights."""
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective

    k = ctx.n_objectives
    return qLogNoisyExpectedHypervolumeImprovement(
        model=model,
        ref_point=reference_point(ctx),
        X_baseline=ctx.X_baseline,
        sampler=_sampler(model, ctx, options),
        objective=IdentityMCMultiOutputObjective(outcomes=list(range(k))),
        constraints=_constraint_callables(ctx),
        X_pending=ctx.X_pending,
        prune_baseline=bool(options.get("prune_baseline", True)),
    )


def reference_point(ctx: AcquisitionContext) -> list[float]:
    """The hypervolume reference (maximization sense): the spec's values where given, else
    BoTorch's rule on the measured feasible front (its nadir less 10% of its range)."""
    from botorch.utils.multi_objective.hypervolume import infer_reference_point
    from botorch.utils.multi_objective.pareto import is_non_dominated

    k = ctx.n_objectives
    Yo = ctx.Y[:, :k]
    ok = _feasible(ctx)
    front = Yo[ok] if bool(ok.any()) else Yo
    front = front[is_non_dominated(front)]
    inferred = infer_reference_point(front).tolist()
    given = ctx.ref_point or [None] * k
    return [float(g) if g is not None else float(i) for g, i in zip(given, inferred, strict=True)]
