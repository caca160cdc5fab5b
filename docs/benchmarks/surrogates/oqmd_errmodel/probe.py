"""Probe: can an error model fitted on the held-out calibration rows rank the errors better?

Loads the member predictions that `oqmd_seeds/probe.py --save` wrote (test rows and the fit's
held-out calibration rows, with their indices), fits gradient-boosted trees that predict the
ensemble's log |error| on the calibration rows from the ensemble's own spread, noise and mean and
from the composition (histogram trees, and the trees of `error_model = "trees"`), and scores
Spearman(|error|, prediction) on the test half against the model's own sigma. Run from the
repository root, with the shared data beside the checkout:

    python docs/benchmarks/surrogates/oqmd_seeds/probe.py --seed 2 --epochs 60 --save /tmp/s2.npz
    python docs/benchmarks/surrogates/oqmd_errmodel/probe.py /tmp/s2.npz
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.stats import spearmanr
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from loop.benchmark.surrogate_data import load_composition_table
from surrogates.error_model import ERROR_FLOOR, TREE_SETTINGS

BASE = "../shared/data/composition/oqmd_formation_enthalpy/"
#: the first screen's histogram trees
HIST = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "random_state": 0,
}


def sp(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def features(mu: np.ndarray, sd: np.ndarray, X: np.ndarray | None) -> np.ndarray:
    spread, noise = mu.var(0, ddof=1), (sd**2).mean(0)
    cols = [np.log(spread + 1e-12), np.log(noise), mu.mean(0)]
    if X is not None:
        cols.append((X > 0).sum(1).astype(float))
        return np.column_stack([*cols, X])
    return np.column_stack(cols)


def main() -> None:
    z = np.load(sys.argv[1])
    kw = {"input_column": "formula", "target_column": "target", "drop_abs_above": 5}
    tr = load_composition_table(BASE + "val.csv", **kw)
    te = load_composition_table(BASE + "test.csv", **kw)
    Xh, Xt = np.asarray(tr.X)[z["held"]], np.asarray(te.X)
    err_h = np.abs(z["hy"] - z["hmu"].mean(0))
    err_t = np.abs(z["y"] - z["mu"].mean(0))
    var_t = z["mu"].var(0, ddof=1) + (z["sd"] ** 2).mean(0)
    var_h = z["hmu"].var(0, ddof=1) + (z["hsd"] ** 2).mean(0)
    print(f"rows: {len(err_h)} held-out, {len(err_t)} test; test MAE {err_t.mean():.4f}")
    print(f"model sigma: spearman test {sp(err_t, var_t):.3f}, held-out {sp(err_h, var_h):.3f}")
    for name, comp in (("sigma parts + mean", False), ("sigma parts + mean + composition", True)):
        Fh = features(z["hmu"], z["hsd"], Xh if comp else None)
        Ft = features(z["mu"], z["sd"], Xt if comp else None)
        t = np.log(err_h + ERROR_FLOOR)
        models = {
            "histogram trees": lambda: HistGradientBoostingRegressor(**HIST),
            "the surrogate's trees (TREE_SETTINGS)": lambda: GradientBoostingRegressor(
                **TREE_SETTINGS, random_state=0
            ),
        }
        for label, make in models.items():
            oof = np.zeros(len(t))
            for a, b in KFold(5, shuffle=True, random_state=0).split(Fh):
                oof[b] = make().fit(Fh[a], t[a]).predict(Fh[b])
            pred = make().fit(Fh, t).predict(Ft)
            print(
                f"{label} on {name}: spearman test {sp(err_t, pred):.3f}, "
                f"held-out out-of-fold {sp(err_h, oof):.3f}"
            )


if __name__ == "__main__":
    main()
