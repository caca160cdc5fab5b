"""Probe: does refitting MC dropout's noise head on held-out residuals make sigma rank errors?

Trains the Laplace-NLL ElemNet-small MC-dropout network of the fold runs (300 s, half the
published dropout rates, seed 0) on matbench fold 2 of mp_e_form, exactly as `probe.py` does.
Then it refits only the noise row of the output layer (33 weights: the log Laplace scale is
linear in the last hidden layer), on the network's own validation rows (rows it never trained
on), against the residuals of the mean over the 32 masks, by Laplace likelihood:

- `noise`: the predictive spread is the mean predicted noise over the masks alone;
- `total`: the predictive spread is the masks' spread plus that noise, as the model scores it.

Prints Spearman(|error|, sigma) on the test rows for the trained head and both refits, and the
validation and test Laplace NLL. Run from the repository root, with the shared data beside the
checkout:

    python docs/benchmarks/surrogates/mp_dropout/refit_probe.py > refit_probe.log
"""

from __future__ import annotations

import math
import time

import torch
from probe import SEED, train  # the first probe, beside this file: same data, fold and fit
from scipy.stats import spearmanr

from surrogates.neural import CAL_MIN_ROWS, MIN_CAL_POINTS
from surrogates.training import LOG_SCALE_LIMITS


def val_rows(n: int) -> torch.Tensor:
    """The validation rows `_DropoutFamily` trains against (same seed, same split order)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SEED))
    assert n >= CAL_MIN_ROWS
    n_cal = min(max(MIN_CAL_POINTS, int(round(0.1 * n))), 10000)
    train_idx = perm[n_cal:]
    n_val = max(2, int(round(0.1 * train_idx.numel())))
    return train_idx[:n_val]


def features(model, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden layer per mask (`T x n x 32`) and the standardized mean per mask (`T x n`)."""
    hs, mus = [], []
    with torch.no_grad():
        for i in range(0, X.shape[0], 8192):
            H = model.input_map(X[i : i + 8192])
            Hs = H.unsqueeze(-3).expand(model.samples, *H.shape)
            h = model.net.body(Hs)
            hs.append(h)
            mus.append(model.net.head(h)[..., 0])
    return torch.cat(hs, -2), torch.cat(mus, -1)


def stats(h, mu_t, w, c, spread: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (standardized) and predictive sd from the masks' features and a noise row."""
    log_b = (h @ w + c).clamp(*LOG_SCALE_LIMITS)  # `T x n`
    noise_var = (2.0 * (2 * log_b).exp()).mean(0)  # Laplace variance 2 b^2, mean over masks
    mu = mu_t.mean(0)
    var = noise_var + (mu_t.var(0) if spread else 0.0)
    return mu, var.sqrt()


def nll(r: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    b = sd / math.sqrt(2.0)
    return (r.abs() / b + b.log() + math.log(2.0)).mean()


def refit(h, mu_t, r, w0, c0, spread: bool) -> tuple[torch.Tensor, torch.Tensor]:
    w = w0.clone().requires_grad_(True)
    c = c0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, c], lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nll(r, stats(h, mu_t, w, c, spread)[1])
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), c.detach()


def main() -> None:
    torch.manual_seed(SEED)
    table, split, fit = train()
    X = torch.as_tensor(table.X)
    Xtr = X[split.train]
    ytr = torch.as_tensor(table.y[split.train], dtype=torch.float32)
    model = fit.model.eval()
    ym, ys = float(model.y_mean[0]), float(model.y_std[0])
    val = val_rows(Xtr.shape[0])
    hv, mv = features(model, Xtr[val])
    rv = (ytr[val] - ym) / ys - mv.mean(0)
    ht, mt = features(model, X[split.test])
    yt = torch.as_tensor(table.y[split.test], dtype=torch.float32)
    rt = (yt - ym) / ys - mt.mean(0)
    print(f"validation rows {val.numel()}, test rows {yt.numel()}")
    print(f"MAE test (eV/atom) {float(rt.abs().mean()) * ys:.4f}")
    w0 = model.net.head.weight[1].detach().clone()
    c0 = model.net.head.bias[1].detach().clone()
    rows = [("trained head", w0, c0, True)]
    for spread in (False, True):
        t1 = time.time()
        w, c = refit(hv, mv, rv, w0, c0, spread)
        name = "refit, total" if spread else "refit, noise"
        print(f"{name}: {time.time() - t1:.1f} s")
        rows.append((name, w, c, spread))
    spread_only = mt.var(0).sqrt()
    print(f"masks' spread alone: test spearman {spearmanr(rt.abs(), spread_only).statistic:.3f}")
    for name, w, c, spread in rows:
        for sp in (True, False) if name == "trained head" else (spread,):
            _, sv = stats(hv, mv, w, c, sp)
            _, st = stats(ht, mt, w, c, sp)
            rho = float(spearmanr(rt.abs().numpy(), st.numpy()).statistic)
            rho_y = float(spearmanr(yt.abs().numpy(), st.numpy()).statistic)
            print(
                f"{name:>13} sigma={'spread+noise' if sp else 'noise':<12}: test spearman "
                f"{rho:.3f} (with |y| {rho_y:+.3f}); NLL val {float(nll(rv, sv)):.3f} "
                f"test {float(nll(rt, st)):.3f}; median sd {float(st.median()) * ys:.4f}"
            )


if __name__ == "__main__":
    main()
