"""Probe: why the OQMD Laplace-NLL ensemble's error ranking varies so much between seeds.

Trains the ensemble of the seed runs (ElemNet-small, 4 members, Laplace NLL, 900 s budget) on
`val.csv` with a given model seed, and saves every member's mean and predicted noise sd at the
test rows and at the fit's held-out calibration rows. Then prints Spearman(|error|, sigma) per
member and for the mixture, its spread part and its noise part, and for other ways of pooling
the members' noise, so one run shows whether a bad seed is one bad member or all of them.
Run from the repository root, with the shared data beside the checkout:

    python docs/benchmarks/surrogates/oqmd_seeds/probe.py --seed 2 --save /tmp/s2.npz > probe_s2.log
    python docs/benchmarks/surrogates/oqmd_seeds/probe.py --load /tmp/s2.npz   # analysis only

`--epochs N` trains N epochs per member on the linear schedule instead of the budget.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "oqmd_weigh"))
from probe import OPTIONS as WEIGH_OPTIONS  # noqa: E402  (the weight probe's)
from probe import fit_on_val  # noqa: E402

# the weight probe's options (weigh_noise off, the default) with the seed runs' budget
OPTIONS = {**WEIGH_OPTIONS, "members": 4, "time_budget": 900}


def members(model, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """`K x n` member means and noise sds in target units (calibration factors left out)."""
    mus, sds = [], []
    with torch.no_grad():
        for i in range(0, X.shape[0], 8192):
            out = model._members(model.input_map(X[i : i + 8192]))
            mus.append((out[..., :1] * model.y_std + model.y_mean)[..., 0])
            sds.append((model._noise(out) / model.noise_scale)[..., 0])
    return torch.cat(mus, -1).double().numpy(), torch.cat(sds, -1).double().numpy()


def train(seed: int, path: str, epochs: int | None = None) -> None:
    """Fit on `val.csv`, save member predictions at the test and held-out rows to `path`;
    with `epochs`, train that many epochs per member on the linear schedule instead of the
    time budget."""
    opts = dict(OPTIONS)
    if epochs is not None:
        del opts["time_budget"]
        opts.update(schedule="linear", epochs=epochs)
    t0 = time.time()
    tr, te, X, fit = fit_on_val(opts, seed)
    print(f"seed {seed}: fit {time.time() - t0:.0f} s, epochs {fit.info['epochs']}")
    model = fit.model.eval()
    held = fit.heldout_index.numpy()
    mu, sd = members(model, torch.as_tensor(te.X))
    hmu, hsd = members(model, X[held])
    np.savez(path, mu=mu, sd=sd, y=te.y, hmu=hmu, hsd=hsd, hy=tr.y[held], held=held)


def sp(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def analyze(path: str) -> None:
    z = np.load(path)
    mu, sd, y = z["mu"], z["sd"], z["y"]
    mean = mu.mean(0)
    err = np.abs(y - mean)
    spread, noise = mu.var(0, ddof=1), (sd**2).mean(0)
    print(f"ensemble MAE {err.mean():.4f}")
    print(f"spearman |err| vs spread + noise (the model)  {sp(err, spread + noise):.3f}")
    print(f"spearman |err| vs spread                      {sp(err, spread):.3f}")
    print(f"spearman |err| vs mean noise variance         {sp(err, noise):.3f}")
    print(f"spearman |err| vs geometric mean of noise sd  {sp(err, np.log(sd).mean(0)):.3f}")
    print(f"spearman |err| vs median noise sd             {sp(err, np.median(sd, 0)):.3f}")
    print(f"spearman |y| vs |err|                         {sp(np.abs(y), err):.3f}")
    print(f"spearman |y| vs spread + noise                {sp(np.abs(y), spread + noise):.3f}")
    # the ranking a model would reach if its own sigma were the truth: |err| drawn from it
    rng = np.random.default_rng(0)
    sig = np.sqrt(spread + noise)
    draw = np.abs(rng.laplace(0.0, sig / np.sqrt(2)))
    print(f"spearman if the errors followed sigma exactly {sp(draw, sig):.3f}")
    for k in range(mu.shape[0]):
        ek = np.abs(y - mu[k])
        print(
            f"member {k}: MAE {ek.mean():.4f}, spearman own |err| vs own sd {sp(ek, sd[k]):.3f}, "
            f"ensemble |err| vs its sd {sp(err, sd[k]):.3f}, median sd {np.median(sd[k]):.4f}"
        )
    K = mu.shape[0]
    for k in range(K):
        keep = [j for j in range(K) if j != k]
        s2 = mu[keep].var(0, ddof=1) + (sd[keep] ** 2).mean(0)
        print(f"without member {k}: spearman {sp(np.abs(y - mu[keep].mean(0)), s2):.3f}")
    c = np.corrcoef(np.log(sd))
    print("correlation of members' log noise sd:\n" + np.array2string(c, precision=3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", help="train, then save member predictions here")
    ap.add_argument("--load", help="analyse saved member predictions only")
    ap.add_argument("--epochs", type=int, help="epochs per member, linear schedule, no budget")
    a = ap.parse_args()
    if a.save:
        train(a.seed, a.save, a.epochs)
    analyze(a.save or a.load)


if __name__ == "__main__":
    main()
