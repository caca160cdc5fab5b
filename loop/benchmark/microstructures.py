"""`loop benchmark microstructures`: the 3-D CNN ensemble against the homogenization baselines of
Yang et al. (2018) on a labelled set from `loop simulate microstructures`, one held-out split.

Baselines, computed in the same run on the same split: the rule of mixtures (Voigt average of
the target component), and two-point statistics (periodic FFT autocorrelation of phase 1) reduced
by PCA and fitted by polynomial regression (components and degree chosen by 5-fold
cross-validation on the training rows). Errors are mean absolute percentage errors of the
target (as the paper reports them), next to MAE, R2 and, for the ensemble, 90% coverage.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import LoopError
from loop.homogenize import Phase, isotropic_stiffness
from loop.microgen import load_dataset

__all__ = ["run_microstructure_benchmark", "microstructure_markdown", "target_values"]

_MANDEL = {"C11": 0, "C22": 1, "C33": 2, "C44": 3, "C55": 4, "C66": 5}


def target_values(arrays: dict[str, np.ndarray], attrs: dict[str, Any], target: str) -> np.ndarray:
    """The labelled set's values of a diagonal stiffness term such as `C33`.

    Raises:
        LoopError: The set lacks that component.
    """
    if attrs.get("physics") != "elastic":
        raise LoopError(
            f"the set holds {attrs.get('physics')} labels; this benchmark predicts stiffness",
            "make the set with --physics elastic",
        )
    if target not in _MANDEL:
        raise LoopError(f"unknown target {target!r}", f"use one of {', '.join(_MANDEL)}")
    i = _MANDEL[target]
    cols = list(attrs.get("columns", range(arrays["tensors"].shape[-1])))
    if i not in cols:
        raise LoopError(
            f"the set solved the load cases {[c + 1 for c in cols]} only, not {target}",
            f"make it with --column {i + 1} (or without --column)",
        )
    return np.asarray(arrays["tensors"][:, i, cols.index(i)], dtype=float)


def _mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) / np.abs(y)) * 100.0)


def _scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    res = y - pred
    return {
        "mape": _mape(pred, y),
        "mae": float(np.mean(np.abs(res))),
        "r2": float(1.0 - np.sum(res**2) / np.sum((y - y.mean()) ** 2)),
    }


def two_point_statistics(images: np.ndarray) -> np.ndarray:
    """Periodic autocorrelation of phase 1 of each image, flattened (n x voxels)."""
    n = images.shape[0]
    axes = tuple(range(1, images.ndim))
    m = images.astype(float)
    f = np.fft.rfftn(m, axes=axes)
    s2 = np.fft.irfftn(np.abs(f) ** 2, s=images.shape[1:], axes=axes) / np.prod(images.shape[1:])
    return s2.reshape(n, -1)


def _two_point_model(
    images: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int
) -> dict[str, Any]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    t = time.perf_counter()
    feats = two_point_statistics(images)
    pipe = Pipeline(
        [
            ("pca", PCA(random_state=seed)),
            ("scale", StandardScaler()),
            ("poly", PolynomialFeatures()),
            ("ridge", Ridge(alpha=1e-6)),
        ]
    )
    # PCA inside a 5-fold split sees 4/5 of the training rows: keep only the component
    # counts every fold can fit (tiny sets would otherwise score NaN for the larger ones)
    fold_rows = len(train) - -(-len(train) // 5)
    components = [k for k in (3, 5, 10, 20) if k <= min(fold_rows, feats.shape[1])] or [
        max(1, min(fold_rows, feats.shape[1]))
    ]
    grid = GridSearchCV(
        pipe,
        {"pca__n_components": components, "poly__degree": [1, 2, 3]},
        cv=5,
        scoring="neg_mean_absolute_error",
    )
    grid.fit(feats[train], y[train])
    pred = grid.predict(feats[test])
    return {
        "pred": pred,
        "seconds": time.perf_counter() - t,
        "settings": {k.split("__")[1]: v for k, v in grid.best_params_.items()},
    }


def _network(
    kind: str,
    images: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    options: dict[str, Any],
    seed: int,
    device: str,
) -> dict[str, Any]:
    import torch

    from surrogates import load_builtin, make_surrogate

    load_builtin()
    sur = make_surrogate(kind, options)
    stack = torch.as_tensor(images)
    sur.set_images(stack)
    X = torch.arange(len(y), dtype=torch.double).unsqueeze(-1)
    Y = torch.tensor(y, dtype=torch.double).unsqueeze(-1)
    t = time.perf_counter()
    fit = sur.fit(
        X[train],
        Y[train],
        bounds=torch.tensor([[0.0], [len(y) - 1.0]], dtype=torch.double),
        seed=seed,
        device=device,
    )
    fit_s = time.perf_counter() - t
    with torch.no_grad():
        post = fit.model.posterior(
            X[test].to(fit.model.device if hasattr(fit.model, "device") else "cpu")
        )
        mean = post.mean.squeeze(-1).cpu().double().numpy()
        sd = post.variance.clamp_min(0).sqrt().squeeze(-1).cpu().double().numpy()
    z = np.abs(mean - y[test]) / np.maximum(sd, 1e-12)
    return {
        "pred": mean,
        "sigma": sd,
        "cov90": float(np.mean(z <= 1.6449)),
        "seconds": fit_s,
        "epochs": fit.info.get("epochs"),
    }


def run_microstructure_benchmark(
    data: Path,
    *,
    target: str = "C33",
    test_fraction: float = 0.2,
    members: int = 3,
    budget: float = 600.0,
    epochs: int = 300,
    dropout: bool = False,
    seed: int = 0,
    device: str = "cpu",
    limit: int | None = None,
) -> dict[str, Any]:
    """Fit every model on one split of a labelled set and score the held-out rows.

    Args:
        data: A set from `loop simulate microstructures`.
        target: Diagonal stiffness term, e.g. `C33` (needs that load case in the set).
        members: CNN ensemble members.
        budget: Training seconds of the whole ensemble (and of the MC-dropout net).
        epochs: Epoch limit per network.
        dropout: Also train the MC-dropout CNN.
    """
    arrays, attrs = load_dataset(data)
    y = target_values(arrays, attrs, target)
    images = arrays["images"]
    if limit is not None:
        images, y = images[:limit], y[:limit]
    n = len(y)
    if n < 20:
        raise LoopError(f"{data} holds {n} microstructures; the benchmark needs 20 or more", "")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    models: dict[str, dict[str, Any]] = {}

    nu = float(attrs.get("poisson_ratio", 0.3))
    c0 = isotropic_stiffness(Phase(1.0, nu), 3)[_MANDEL[target], _MANDEL[target]]
    c1 = isotropic_stiffness(Phase(float(attrs["contrast"]), nu), 3)[
        _MANDEL[target], _MANDEL[target]
    ]
    vf = images.reshape(n, -1).mean(1)
    models["rule of mixtures"] = {**_scores((1 - vf[test]) * c0 + vf[test] * c1, y[test])}
    tp = _two_point_model(images, y, train, test, seed)
    models["2-point statistics + PCA + polynomial"] = {
        **_scores(tp["pred"], y[test]),
        "seconds": tp["seconds"],
        "settings": tp["settings"],
    }
    opts = {
        "members": members,
        "time_budget": budget,
        "schedule": "budget",
        "epochs": epochs,
        "patience": max(epochs, 30),
    }
    cnn = _network("cnn3d-ensemble", images, y, train, test, opts, seed, device)
    models[f"3-D CNN ensemble ({members})"] = {
        **_scores(cnn["pred"], y[test]),
        "cov90": cnn["cov90"],
        "seconds": cnn["seconds"],
        "epochs": cnn["epochs"],
    }
    if dropout:
        d_opts = {k: v for k, v in opts.items() if k != "members"}
        mcd = _network("cnn3d-mcdropout", images, y, train, test, d_opts, seed, device)
        models["3-D CNN MC dropout"] = {
            **_scores(mcd["pred"], y[test]),
            "cov90": mcd["cov90"],
            "seconds": mcd["seconds"],
            "epochs": mcd["epochs"],
        }
    return {
        "data": str(data),
        "attrs": attrs,
        "target": target,
        "rows": n,
        "train": len(train),
        "test": len(test),
        "budget_s": budget,
        "members": members,
        "device": device,
        "models": models,
    }


def microstructure_markdown(doc: dict[str, Any], command: str) -> str:
    a = doc["attrs"]
    lines = [
        f"`{command}`",
        "",
        f"{doc['rows']} microstructures ({a['size']}^{a['dim']}, stiffness contrast "
        f"{a['contrast']:g}, phase-1 fraction {a['volume_fraction'][0]}-{a['volume_fraction'][1]}"
        f"), target {doc['target']}; {doc['train']} train / {doc['test']} test rows; networks "
        f"trained for {doc['budget_s']:g} s on {doc['device']}",
        "",
        "| model | MAPE % | MAE | R2 | 90% coverage | fit s | settings |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, m in doc["models"].items():
        cov = f"{m['cov90']:.2f}" if "cov90" in m else "-"
        secs = f"{m['seconds']:.0f}" if "seconds" in m else "-"
        settings = m.get("settings") or (f"epochs {m['epochs']}" if m.get("epochs") else "")
        lines.append(
            f"| {name} | {m['mape']:.2f} | {m['mae']:.4f} | {m['r2']:.3f} | {cov} | {secs} | "
            f"{settings} |"
        )
    return "\n".join(lines) + "\n"
