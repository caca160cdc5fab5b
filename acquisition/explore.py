"""Pure exploration and Thompson sampling that work on every surrogate family.

`qPosteriorVariance` scores a batch by the log-determinant of the joint posterior covariance of
its objective values (pending points included), estimated from posterior samples: ensemble
members, MC dropout masks or GP draws. For one new point next to a set `P` (pending and earlier
picks) this is `log(residual variance + noise)`, the variance left at the point once `P` is
measured, so sequential greedy picks the most uncertain point given what is already running and
never a near-duplicate of it. BoTorch's `qNegIntegratedPosteriorVariance` needs `fantasize`
(GPs only) and `PosteriorStandardDeviation` has no `X_pending`, hence this function.

`ThompsonSampling` picks, for each slot of the batch, the best point of one posterior sample:
member `k` of an ensemble, or one Matheron path of a GP.
"""

from __future__ import annotations

import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.acquisition.monte_carlo import MCAcquisitionFunction
from botorch.acquisition.objective import MCAcquisitionObjective
from botorch.models.model import Model
from botorch.sampling.base import MCSampler
from botorch.utils.transforms import concatenate_pending_points, t_batch_mode_transform

__all__ = ["qPosteriorVariance", "ThompsonSampling", "residual_variance_greedy"]


class qPosteriorVariance(MCAcquisitionFunction):
    """Joint-entropy exploration: `log det(C[X, P] + noise I) - log det(C[P] + noise I)`, `C` the
    posterior covariance of the objective over the batch `X` and the pending points `P`.

    Args:
        model: Any BoTorch model (ensembles give their members as samples).
        sampler: Sampler of the joint posterior (each member once for ensembles).
        objective: Maps samples to the explored outcome (output 0 by default).
        noise: Variance added to the diagonal: the measurement noise assumed when conditioning
            on pending points and earlier picks (same units as the objective squared).
        X_pending: Points proposed but not measured.
    """

    def __init__(
        self,
        model: Model,
        sampler: MCSampler,
        noise: float,
        objective: MCAcquisitionObjective | None = None,
        X_pending: torch.Tensor | None = None,
    ) -> None:
        super().__init__(model=model, sampler=sampler, objective=objective, X_pending=X_pending)
        self.noise = float(noise)

    @concatenate_pending_points
    @t_batch_mode_transform()
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        post = self.model.posterior(X)
        samples = self.get_posterior_samples(post)  # S x b x n x m
        obj = self.objective(samples, X=X)  # S x b x n
        D = obj - obj.mean(dim=0, keepdim=True)
        S, n = obj.shape[0], obj.shape[-1]
        C = torch.einsum("sbi,sbj->bij", D, D) / max(S - 1, 1)
        eye = torch.eye(n, dtype=C.dtype, device=C.device)
        full = torch.logdet(C + self.noise * eye)
        p = 0 if self.X_pending is None else self.X_pending.shape[-2]
        if p == 0:
            return full
        Cp = C[..., n - p :, n - p :]
        return full - torch.logdet(Cp + self.noise * eye[:p, :p])


class ThompsonSampling(AcquisitionFunction):
    """The value of one posterior sample; greedy batches move to the next sample per pick.

    For ensembles sample `k` is member `order[k]`; for GPs a Matheron path drawn on first use.

    Args:
        model: The fitted model.
        seed: Seed of the member order or of the paths.
        objective: Maps `... x m` outputs to the objective (output 0 by default).
    """

    def __init__(
        self,
        model: Model,
        seed: int,
        X_pending: torch.Tensor | None = None,
        constraints: list | None = None,  # type: ignore[type-arg]
        penalty: float = 1e3,
    ) -> None:
        super().__init__(model=model)
        self.seed = int(seed)
        self.constraints = list(constraints or [])
        self.penalty = float(penalty)
        self._paths = None
        self.set_X_pending(X_pending)

    def set_X_pending(self, X_pending: torch.Tensor | None = None) -> None:
        # one new sample per batch slot: the slot is the number of points already in the batch
        self.X_pending = X_pending

    @property
    def slot(self) -> int:
        return 0 if self.X_pending is None else int(self.X_pending.shape[-2])

    def sample_index(self, k: int, size: int) -> int:
        """The sample (ensemble member, GP draw) used for batch slot `k` out of `size`: a
        seeded permutation, renewed every `size` slots."""
        g = torch.Generator().manual_seed(self.seed + k // size)
        return int(torch.randperm(size, generator=g)[k % size])

    def utility(self, Z: torch.Tensor) -> torch.Tensor:
        """`... x m` outputs to the objective less `penalty` per unit of constraint violation."""
        u = Z[..., 0]
        for c in self.constraints:
            u = u - self.penalty * c(Z).clamp_min(0)
        return u

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        from botorch.models.ensemble import EnsembleModel

        if isinstance(self.model, EnsembleModel):
            k = self.sample_index(self.slot, int(self.model.num_members))  # type: ignore[attr-defined]
            return self.utility(self.model(X)[..., k, :, :]).squeeze(-1)
        from botorch.sampling.pathwise import draw_matheron_paths

        if self._paths is None:
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                self._paths = draw_matheron_paths(self.model, sample_shape=torch.Size([64]))
        out = self._paths(X.reshape(-1, X.shape[-1]))  # 64 x b, or 64 x m x b
        out = out.unsqueeze(1) if out.dim() == 2 else out
        Z = out[self.sample_index(self.slot, 64)].transpose(0, 1)  # b x m
        return self.utility(Z)


def residual_variance_greedy(
    samples: torch.Tensor,
    q: int,
    *,
    noise: float,
    pending: torch.Tensor | None = None,
    eligible: torch.Tensor | None = None,
    keys: torch.Tensor | None = None,
) -> tuple[list[int], torch.Tensor]:
    """Greedy `qPosteriorVariance` on an `S x N` matrix of objective samples.

    The covariance is the samples' (`D^T D`, `D` the centred samples over `sqrt(S - 1)`), so the
    variance left at every candidate after conditioning on a set `P` is `d_c^T W d_c` with
    `W = (I + D_P D_P^T / noise)^-1`, updated by Sherman-Morrison per pick: `O(S^2 N)` per pick,
    `O(S N)` memory. A few members span few directions: once no residual is above `noise` the
    conditioning restarts from the marginal variances; candidates with a pick's input `keys` are
    left out, so the batch holds no duplicates even then.

    Args:
        samples: `S x N` objective samples of the candidates.
        q: Batch size.
        noise: Variance added on the diagonal.
        pending: `S x p` objective samples of pending points (conditioned on first).
        eligible: `N` booleans; only these may be picked.
        keys: `N` row keys (`row_keys`); candidates sharing a pick's key are not picked again.

    Returns:
        Picked columns and `log(residual + noise)` of each.
    """
    S, N = samples.shape
    scale = 1.0 / max(S - 1, 1) ** 0.5
    mean = samples.mean(dim=0, keepdim=True)
    D = (samples - mean) * scale
    marginal = (D * D).sum(dim=0)
    taken = torch.zeros(N, dtype=torch.bool) if eligible is None else ~eligible.clone()
    W = torch.eye(S, dtype=samples.dtype)

    def condition(W: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        u = d / noise**0.5
        Wu = W @ u
        return W - torch.outer(Wu, Wu) / (1.0 + u @ Wu)

    if pending is not None:
        Dp = (pending - pending.mean(dim=0, keepdim=True)) * scale
        for j in range(Dp.shape[1]):
            W = condition(W, Dp[:, j])
    picks: list[int] = []
    values: list[float] = []
    for _ in range(q):
        if bool(taken.all()):
            break
        r = ((W @ D) * D).sum(dim=0).masked_fill(taken, -torch.inf)
        if float(r.max()) <= noise:
            # nothing left above the noise: the samples' few directions are spent
            W = torch.eye(S, dtype=samples.dtype)
            r = marginal.masked_fill(taken, -torch.inf)
        i = int(torch.argmax(r))
        picks.append(i)
        values.append(float(torch.log(r[i].clamp_min(0) + noise)))
        taken[i] = True
        if keys is not None:
            taken |= keys == keys[i]
        W = condition(W, D[:, i])
    return picks, torch.tensor(values, dtype=samples.dtype)
