"""An error model: gradient-boosted trees that predict where a network ensemble errs.

A network's predicted noise is learned from its own training residuals, which are smaller than,
and placed differently from, its errors on data it has not seen; on OQMD the ElemNet ensemble's
spread ranks its test errors at Spearman 0.27 to 0.47 between seeds. The error model learns the
size of the errors on the fit's calibration rows instead (rows no network trained on): trees
regress `log |error|` on the network inputs and on the ensemble's own summary at each row (log
spread of the member means, log predicted noise, the mean), the direct error predictor of
Lahlou et al. 2021 (DEUP). `posterior(X, observation_noise=True)` of a model that carries one
is the members' mixture rescaled to the error model's spread; the latent posterior that
acquisition functions see is unchanged.

The trees are fitted with scikit-learn's `GradientBoostingRegressor` and stored as tensors
(`TreeEnsemble`), so they evaluate on the model's device and the checkpoint stays a dict of
tensors that loads with `weights_only=True`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from surrogates.training import noise_sd

__all__ = [
    "ERROR_MODELS",
    "ERROR_MODEL_MIN_ROWS",
    "TreeEnsemble",
    "ErrorModel",
    "error_features",
    "fit_error_model",
]

#: Values of the surrogate option `error_model`: `"auto"` (the default) fits the trees whenever
#: the fit holds out at least `ERROR_MODEL_MIN_ROWS` calibration rows and keeps the networks'
#: spread otherwise; `"trees"` asks for them (and says in the fit info when there are too few
#: rows); `"none"` never fits them.
ERROR_MODELS = ("auto", "none", "trees")
#: Calibration rows below which no error model is fitted (the fit keeps the plain spread).
ERROR_MODEL_MIN_ROWS = 500
#: The trees' settings: on OQMD (5,124 calibration rows, 89 features; a 4-member ElemNet-small
#: ensemble at seed 2, 60 epochs) deeper trees with small leaves ranked the test errors best:
#: Spearman 0.404 at depth 3 with 40-row leaves, 0.447 at depth 4 / 20, 0.452 with these.
TREE_SETTINGS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "max_depth": 5,
    "min_samples_leaf": 20,
    "subsample": 0.8,
}
#: Folds of the cross-fit that gives every calibration row an out-of-fold error prediction.
FOLDS = 5
#: Floor on |error| (standardized units) before the log: exact hits must not dominate the fit.
ERROR_FLOOR = 1e-4


class TreeEnsemble(nn.Module):
    """Regression trees summed as gradient boosting does: `init + rate * sum_t tree_t(F)`.

    Each tree is stored padded to `N` nodes: `feature`, `threshold` (`T x N`), child indices
    `left`, `right` (`T x N`, a leaf points to itself) and leaf `value` (`T x N`). A row goes
    left where `F[feature] <= threshold`, as in scikit-learn (inputs compared in float32, the
    thresholds in float64).

    Args:
        feature, threshold, left, right, value: The padded node arrays.
        init: The constant the boosting started from.
        rate: The learning rate the trees are scaled by.
        depth: The deepest path (steps from the root to a leaf).
    """

    feature: torch.Tensor
    threshold: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    value: torch.Tensor
    init: torch.Tensor
    rate: torch.Tensor

    def __init__(
        self,
        feature: torch.Tensor,
        threshold: torch.Tensor,
        left: torch.Tensor,
        right: torch.Tensor,
        value: torch.Tensor,
        init: torch.Tensor | float,
        rate: torch.Tensor | float,
        depth: int,
    ) -> None:
        super().__init__()
        self.register_buffer("feature", feature.long())
        self.register_buffer("threshold", threshold.double())
        self.register_buffer("left", left.long())
        self.register_buffer("right", right.long())
        self.register_buffer("value", value.double())
        self.register_buffer("init", torch.as_tensor(init, dtype=torch.float64).reshape(()))
        self.register_buffer("rate", torch.as_tensor(rate, dtype=torch.float64).reshape(()))
        self.depth = int(depth)

    @classmethod
    def from_sklearn(cls, gbr: Any) -> TreeEnsemble:
        """The trees of a fitted `GradientBoostingRegressor` (squared-error loss)."""
        trees = [est[0].tree_ for est in gbr.estimators_]
        N = max(t.node_count for t in trees)
        T = len(trees)
        feature = np.zeros((T, N), dtype=np.int64)
        threshold = np.zeros((T, N))
        left = np.tile(np.arange(N), (T, 1))
        right = left.copy()
        value = np.zeros((T, N))
        for i, t in enumerate(trees):
            k = t.node_count
            inner = t.children_left[:k] >= 0
            feature[i, :k] = np.where(inner, t.feature[:k], 0)
            threshold[i, :k] = np.where(inner, t.threshold[:k], 0.0)
            left[i, :k] = np.where(inner, t.children_left[:k], np.arange(k))
            right[i, :k] = np.where(inner, t.children_right[:k], np.arange(k))
            value[i, :k] = t.value[:k, 0, 0]
        init = float(np.asarray(gbr.init_.constant_).reshape(-1)[0])
        depth = max(int(t.max_depth) for t in trees)
        return cls(
            torch.from_numpy(feature),
            torch.from_numpy(threshold),
            torch.from_numpy(left),
            torch.from_numpy(right),
            torch.from_numpy(value),
            init,
            float(gbr.learning_rate),
            depth,
        )

    def forward(self, F: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
        """`n` predictions (float64) for `n x p` features, `chunk` rows at a time (each row
        holds a node index per tree)."""
        x = F.float().double()
        T = self.feature.shape[0]
        outs = []
        for s in range(0, x.shape[0], chunk):
            xs = x[s : s + chunk]
            n = xs.shape[0]
            node = torch.zeros(n, T, dtype=torch.long, device=x.device)
            trees = torch.arange(T, device=x.device).expand(n, T)
            for _ in range(self.depth):
                f = self.feature[trees, node]
                go_left = xs.gather(1, f) <= self.threshold[trees, node]
                node = torch.where(go_left, self.left[trees, node], self.right[trees, node])
            outs.append(self.init + self.rate * self.value[trees, node].sum(1))
        return torch.cat(outs) if outs else x.new_zeros(0)

    def to_state(self) -> dict[str, Any]:
        """Constructor arguments (tensors and an int) for a checkpoint."""
        st: dict[str, Any] = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        st["depth"] = self.depth
        return st

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> TreeEnsemble:
        return cls(**st)


def error_features(
    H: torch.Tensor, out: torch.Tensor, m: int, noise: str | None, use_inputs: bool
) -> list[torch.Tensor]:
    """The error model's features of each output `j`: `n x p` each.

    Args:
        H: `batch x n x D` network inputs (flattened over the batch with `out`).
        out: `batch x s x n x m` (`2m` with noise) standardized raw member outputs.
        m: Outputs.
        noise: The networks' noise distribution, or `None`.
        use_inputs: Put the inputs `H` first (off for networks whose input is an index).

    Returns:
        Per output, `[H,] log var_s(mu), [log mean_s(noise^2),] mean_s(mu)` as `N x p`, with
        `N` the batch and row count multiplied out.
    """
    mu = out[..., :m]
    spread = mu.var(dim=-3) if mu.shape[-3] > 1 else torch.zeros_like(mu[..., 0, :, :])
    parts = [spread.clamp_min(1e-12).log(), mu.mean(dim=-3)]
    if noise is not None:
        nv = noise_sd(out[..., m:], noise).pow(2).mean(dim=-3)
        parts.insert(1, nv.clamp_min(1e-12).log())
    flat = [p.reshape(-1, m) for p in parts]
    base = [H.reshape(-1, H.shape[-1]).float()] if use_inputs else []
    return [torch.cat([*base, *(p[:, j : j + 1] for p in flat)], dim=1) for j in range(m)]


class ErrorModel(nn.Module):
    """Per output, trees predicting `log |error|` in standardized units, and the factor that
    calibrates `exp` of that to a standard deviation (fitted on out-of-fold predictions).

    Args:
        trees: One `TreeEnsemble` per output.
        scale: `m` calibration factors.
        noise: The networks' noise distribution (`None`: they predict none); fixes the features.
        use_inputs: Whether the network inputs are features.
    """

    scale: torch.Tensor

    def __init__(
        self,
        trees: list[TreeEnsemble],
        scale: torch.Tensor,
        noise: str | None,
        use_inputs: bool,
    ) -> None:
        super().__init__()
        self.trees = nn.ModuleList(trees)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).reshape(-1))
        self.noise = noise
        self.use_inputs = bool(use_inputs)

    def forward(self, H: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Calibrated standard deviations, standardized units: `batch x n x m` for
        `batch x n x D` inputs and `batch x s x n x m(2m)` member outputs."""
        m = len(self.trees)
        feats = error_features(H, out, m, self.noise, self.use_inputs)
        logs = torch.stack([t(f) for t, f in zip(self.trees, feats, strict=True)], dim=-1)
        sd = logs.exp().to(self.scale) * self.scale
        return sd.reshape(*out.shape[:-3], out.shape[-2], m)

    def to_state(self) -> dict[str, Any]:
        return {
            "trees": [cast(TreeEnsemble, t).to_state() for t in self.trees],
            "scale": self.scale.detach().cpu(),
            "noise": self.noise,
            "use_inputs": self.use_inputs,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> ErrorModel:
        trees = [TreeEnsemble.from_state(t) for t in st["trees"]]
        return cls(trees, st["scale"], st["noise"], bool(st["use_inputs"]))


def fit_error_model(
    features: list[torch.Tensor],
    abs_err: torch.Tensor,
    *,
    noise: str | None,
    use_inputs: bool,
    seed: int,
) -> tuple[ErrorModel, torch.Tensor]:
    """Trees for each output on calibration rows, and their out-of-fold predictions.

    Args:
        features: Per output, `k x p` features (`error_features` at the calibration rows).
        abs_err: `k x m` absolute errors of the ensemble mean, standardized units.
        noise, use_inputs: As the model's (stored with it).
        seed: Seeds the folds and the trees' row subsampling.

    Returns:
        The model with factor 1 (the caller fits the factor on the out-of-fold predictions),
        and `k x m` out-of-fold predicted scales `exp(log |error|)`, standardized units.
    """
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.model_selection import KFold

    k, m = abs_err.shape
    trees, oof = [], np.zeros((k, m))
    folds = list(KFold(FOLDS, shuffle=True, random_state=seed % (2**32)).split(np.arange(k)))
    for j in range(m):
        F = features[j].detach().cpu().double().numpy()
        t = np.log(abs_err[:, j].detach().cpu().double().numpy() + ERROR_FLOOR)

        def gbr() -> Any:
            return GradientBoostingRegressor(**TREE_SETTINGS, random_state=seed % (2**32))

        for a, b in folds:
            oof[b, j] = gbr().fit(F[a], t[a]).predict(F[b])
        trees.append(TreeEnsemble.from_sklearn(gbr().fit(F, t)))
    model = ErrorModel(trees, torch.ones(m), noise, use_inputs)
    return model, torch.from_numpy(np.exp(oof)).float()
