"""Probe: which part of the MC-dropout spread ranks the errors on mp_e_form, matbench fold 2.

Trains the Laplace-NLL ElemNet-small MC-dropout network of the fold runs (300 s, half the
published dropout rates, seed 0) on fold 2's training rows and splits its predictive variance at
the test rows into the spread of the means over the 32 masks and the mean predicted noise over
the masks, and also reads the noise head with dropout off (no mask). Prints Spearman(|error|, .)
of each part, of their sums, and of |target| (to see whether a part only tracks the target's
size). Run from the repository root, with the shared data beside the checkout:

    python docs/benchmarks/surrogates/mp_dropout/probe.py > probe.log
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from loop.benchmark.surrogate_data import load_composition_table, make_splits
from surrogates import load_builtin, make_surrogate
from surrogates.featurizers import ELEMNET_ELEMENTS
from surrogates.neural import noise_weights

DATA = "../shared/data/composition/mp_e_form/mp_e_form.csv"
FOLD = 1  # fold 2 of 5
SEED = 0
OPTIONS = {
    "size": "small",
    "batch_size": 256,
    "lr": 0.001,
    "patience": 1000,
    "epochs": 1000,
    "schedule": "budget",
    "time_budget": 300,
    "dropout_scale": 0.5,
    "loss": "laplace_nll",
}


def parts(model, X: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean over masks, spread of the means, mean noise over masks, noise and mean unmasked."""
    got: dict[str, list[torch.Tensor]] = {k: [] for k in ("mu", "spread", "noise", "noise0", "mu0")}
    layers = model.net.dropout_layers
    masks = [layer.masks for layer in layers]
    with torch.no_grad():
        for i in range(0, X.shape[0], 8192):
            H = model.input_map(X[i : i + 8192])
            out = model._members(H)
            mu = out[..., :1] * model.y_std + model.y_mean
            got["mu"].append(mu.mean(-3))
            got["spread"].append(mu.var(-3))
            got["noise"].append((model._noise(out) ** 2).mean(-3))
            for layer in layers:
                layer.masks = None
            plain = model.net(H)
            for layer, m in zip(layers, masks):
                layer.masks = m
            got["mu0"].append(plain[..., :1] * model.y_std + model.y_mean)
            got["noise0"].append(model._noise(plain) ** 2)
    return {k: torch.cat(v).reshape(-1).double().numpy() for k, v in got.items()}


def train() -> tuple[Any, Any, Any]:
    """The fold's table, its split and the MC-dropout fit on its training rows."""
    load_builtin()
    table = load_composition_table(DATA, input_column="formula", target_column="target")
    split = make_splits(len(table), kind="kfold", folds=5, split_seed=18012019)[FOLD]
    X = torch.as_tensor(table.X)
    d = X.shape[1]
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).double()
    t0 = time.time()
    fit = make_surrogate("elemnet-dropout", OPTIONS).fit(
        X[split.train],
        torch.as_tensor(table.y[split.train], dtype=torch.float32).reshape(-1, 1),
        bounds=bounds,
        seed=SEED,
        input_names=list(ELEMNET_ELEMENTS),
        device="cpu",
    )
    print(f"fit {time.time() - t0:.0f} s, epochs {fit.info['epochs']}")
    return table, split, fit


def main() -> None:
    table, split, fit = train()
    X = torch.as_tensor(table.X)
    model = fit.model.eval()
    p = parts(model, X[split.test])
    y = table.y[split.test]
    err, err0 = np.abs(y - p["mu"]), np.abs(y - p["mu0"])
    print(f"MAE mean over masks {err.mean():.4f}; dropout off {err0.mean():.4f}")

    def sp(a: np.ndarray, b: np.ndarray) -> float:
        return float(spearmanr(a, b).statistic)

    print(f"spearman |err| vs mask spread        {sp(err, p['spread']):.3f}")
    print(f"spearman |err| vs noise over masks   {sp(err, p['noise']):.3f}")
    print(f"spearman |err| vs spread + noise     {sp(err, p['spread'] + p['noise']):.3f}")
    print(f"spearman |err0| vs noise, no mask    {sp(err0, p['noise0']):.3f}")
    print(f"spearman |err0| vs spread + noise0   {sp(err0, p['spread'] + p['noise0']):.3f}")
    print(f"spearman |y| vs mask spread          {sp(np.abs(y), p['spread']):.3f}")
    print(f"spearman |y| vs noise over masks     {sp(np.abs(y), p['noise']):.3f}")
    print(f"spearman |y| vs |err|                {sp(np.abs(y), err):.3f}")
    # what `weigh_noise = true` would pick on the held-out calibration rows, and its test ranking
    held = fit.heldout_index.numpy()
    h = parts(model, X[split.train][held])
    yh = torch.as_tensor(table.y[split.train][held]).reshape(-1, 1)

    def col(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a).reshape(-1, 1)

    w = float(noise_weights(yh, col(h["mu"]), col(h["spread"]), col(h["noise"]))[0])
    picked = sp(err, p["spread"] + w * w * p["noise"])
    print(f"weigh_noise would pick w {w:.3f}: test spearman {picked:.3f}")
    for w in (0.3, 1.0, 3.0, 10.0):
        print(f"  w {w:5.1f}: test spearman {sp(err, p['spread'] + w * w * p['noise']):.3f}")
    med = {k: float(np.median(np.sqrt(p[k]))) for k in ("spread", "noise", "noise0")}
    print("median sd: " + ", ".join(f"{k} {v:.4f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
