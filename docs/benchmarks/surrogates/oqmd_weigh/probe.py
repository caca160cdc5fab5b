"""Probe: how the weight of the predicted noise against the members' spread moves Spearman.

Trains a Laplace-NLL ElemNet-small ensemble (2 members, 200 s in all) on the OQMD training half,
splits its predictive variance into the members' spread and their mean predicted noise, and
scores `var_members + w^2 noise^2` for 41 weights on the held-out calibration rows and on the test
half. Run from the repository root, with the shared data beside the checkout:

    python docs/benchmarks/surrogates/oqmd_weigh/probe.py > probe.log
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from loop.benchmark.surrogate_data import load_composition_table
from surrogates import load_builtin, make_surrogate
from surrogates.featurizers import ELEMNET_ELEMENTS

BASE = "../shared/data/composition/oqmd_formation_enthalpy/"
OPTIONS = {
    "size": "small",
    "members": 2,
    "batch_size": 256,
    "lr": 0.001,
    "patience": 1000,
    "epochs": 1000,
    "schedule": "budget",
    "time_budget": 200,
    "loss": "laplace_nll",
    "weigh_noise": False,
}


def parts(model, X: torch.Tensor) -> list[np.ndarray]:
    """Mean, members' variance and mean predicted noise variance at `X`."""
    mus, spreads, noises = [], [], []
    with torch.no_grad():
        for i in range(0, X.shape[0], 8192):
            out = model._members(model.input_map(X[i : i + 8192]))
            mu = out[..., :1] * model.y_std + model.y_mean
            mus.append(mu.mean(-3))
            spreads.append(mu.var(-3))
            noises.append((model._noise(out) ** 2).mean(-3))
    return [torch.cat(v).reshape(-1).double().numpy() for v in (mus, spreads, noises)]


def fit_on_val(options: dict[str, Any], seed: int) -> tuple[Any, Any, torch.Tensor, Any]:
    """The training and test halves, the training inputs and an ensemble fitted on them."""
    load_builtin()
    kw = {"input_column": "formula", "target_column": "target", "drop_abs_above": 5}
    tr = load_composition_table(BASE + "val.csv", **kw)
    te = load_composition_table(BASE + "test.csv", **kw)
    X = torch.as_tensor(tr.X)
    d = X.shape[1]
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).double()
    fit = make_surrogate("elemnet-ensemble", options).fit(
        X,
        torch.as_tensor(tr.y, dtype=torch.float32).reshape(-1, 1),
        bounds=bounds,
        seed=seed,
        input_names=list(ELEMNET_ELEMENTS),
        device="cpu",
    )
    return tr, te, X, fit


def main() -> None:
    t0 = time.time()
    tr, te, X, fit = fit_on_val(OPTIONS, 0)
    print("fit", time.time() - t0, fit.info["epochs"])
    model = fit.model.eval()
    held = fit.heldout_index
    mc, vc, nc = parts(model, X[held])
    mt, vt, nt = parts(model, torch.as_tensor(te.X))
    err_c, err_t = np.abs(tr.y[held.numpy()] - mc), np.abs(te.y - mt)
    print("MAE test", err_t.mean(), "cal", err_c.mean())
    sp_spread = spearmanr(err_t, vt).statistic
    print("spearman epi-only", sp_spread, "ale-only", spearmanr(err_t, nt).statistic)
    rows = []
    for w in np.logspace(-2, 2, 41):
        var_c = vc + w * w * nc
        sd_c = np.sqrt(var_c)
        laplace = np.log(sd_c).mean() + np.log((err_c / sd_c).mean())
        gauss = 0.5 * np.log(var_c).mean() + 0.5 * np.log((err_c**2 / var_c).mean())
        sp_c = spearmanr(err_c, var_c).statistic
        sp_t = spearmanr(err_t, vt + w * w * nt).statistic
        rows.append((w, laplace, gauss, sp_c, sp_t))
    for r in rows:
        w, lap_nll, gau_nll, sp_c, sp_t = r
        print(
            f"w {w:.3f} lapNLL {lap_nll:.4f} gauNLL {gau_nll:.4f} "
            f"sp_cal {sp_c:.3f} sp_test {sp_t:.3f}"
        )
    lap = min(rows, key=lambda r: r[1])
    gau = min(rows, key=lambda r: r[2])
    one = next(r for r in rows if abs(r[0] - 1) < 1e-9)
    print(f"laplace-chosen w {lap[0]} test sp {lap[4]}; gauss-chosen w {gau[0]} test sp {gau[4]};")
    print(f"w=1 test sp {one[4]}")


if __name__ == "__main__":
    main()
