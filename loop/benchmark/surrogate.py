"""Benchmark surrogates on a composition table: accuracy and uncertainty on identical splits.

Models are `mean` (the training mean, the training standard deviation as sigma), `rf` (a
scikit-learn random forest on "Magpie-lite" descriptors, sigma the spread over its trees) and any
name in the surrogate registry (`gp`, the neural families), fitted on ElemNet's 86 element
fractions. Each model sees the same rows in every fold; the metrics are those of
`loop.benchmark.uq_metrics`.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loop.benchmark.surrogate_data import CompositionTable, Split, SplitKind, make_splits
from loop.benchmark.uq_metrics import calibration_curve, regression_metrics
from loop.errors import LoopError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BUILTIN_MODELS",
    "RESULTS_FORMAT",
    "SurrogateBenchmark",
    "Prediction",
    "known_models",
    "family_of",
    "check_models",
    "parse_option",
    "parse_value",
    "model_options",
    "hardware",
    "plan_splits",
    "run_surrogate_benchmark",
    "summarize_folds",
    "merge_results",
    "calibration_points",
]

#: The `format` of the results documents this module writes.
RESULTS_FORMAT = "loop-surrogate-benchmark/1"
#: Models of this module; every other name comes from the surrogate registry.
BUILTIN_MODELS = ("mean", "rf")
#: Registry families that take no pretrained network as a warm start.
NOT_WARM_STARTED = ("gp",)
#: Test rows per prediction call.
CHUNK = 8192
#: Levels of the calibration curve.
LEVELS = 100
RF_DEFAULTS: dict[str, Any] = {"n_estimators": 100, "n_jobs": -1}


def known_models() -> list[str]:
    """`mean`, `rf` and the registered surrogate families."""
    from surrogates import SURROGATES, load_builtin

    load_builtin()
    return [*BUILTIN_MODELS, *sorted(n for n in SURROGATES if n not in BUILTIN_MODELS)]


def family_of(model: str) -> str:
    """The family of a benchmark model name: `elemnet-ensemble@nll` is an `elemnet-ensemble`
    under its own label, so one run can compare one family under two sets of options."""
    return model.partition("@")[0]


def parse_value(raw: str) -> Any:
    """An option value as int, float, bool, None or a list of numbers (`[256,256]`) when it reads
    so, else the text."""
    raw = raw.strip()
    low = raw.lower()
    if raw.startswith("[") and raw.endswith("]"):
        items = [parse_value(v) for v in raw[1:-1].split(",") if v.strip()]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return items
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_option(text: str) -> tuple[str, str, Any]:
    """`MODEL:KEY=VALUE` -> (model, key, value); values become int, float or bool when they read so.

    Raises:
        LoopError: Text not of that form.
    """
    model, sep, rest = text.partition(":")
    key, eq, raw = rest.partition("=")
    if not sep or not eq or not model.strip() or not key.strip():
        raise LoopError(
            f"--option {text!r} is not MODEL:KEY=VALUE", "write e.g. --option rf:n_estimators=200"
        )
    return model.strip(), key.strip(), parse_value(raw)


def model_options(texts: list[str]) -> dict[str, dict[str, Any]]:
    """`MODEL:KEY=VALUE` texts gathered per model."""
    opts: dict[str, dict[str, Any]] = {}
    for text in texts:
        model, key, value = parse_option(text)
        opts.setdefault(model, {})[key] = value
    return opts


def check_models(models: list[str], options: dict[str, dict[str, Any]]) -> None:
    """Refuse unknown, repeated or unconfigurable models and unknown options before any work.

    Raises:
        LoopError: Naming the bad model or option and listing the known ones.
    """
    from surrogates import UnknownSurrogateError, make_surrogate

    if not models:
        raise LoopError("no --model given", f"pass one or more of: {', '.join(known_models())}")
    known = known_models()
    for m in models:
        family, at, label = m.partition("@")
        if family not in known:
            raise LoopError(f"unknown model '{family}'", f"known models: {', '.join(known)}")
        if at and (not label or family in BUILTIN_MODELS):
            raise LoopError(
                f"model name '{m}' is not FAMILY@LABEL for a surrogate family",
                "label a surrogate family, e.g. -m elemnet-ensemble@nll "
                "--option elemnet-ensemble@nll:loss=laplace_nll",
            )
    dup = sorted({m for m in models if models.count(m) > 1})
    if dup:
        raise LoopError(f"model(s) {dup} given twice", "name each --model once")
    for m in options:
        if m not in models:
            raise LoopError(
                f"--option for '{m}', which is not among the models {models}",
                f"add --model {m} or drop its options",
            )
    if options.get("mean"):
        raise LoopError(f"model 'mean' takes no options, got {sorted(options['mean'])}")
    if options.get("rf"):
        from sklearn.ensemble import RandomForestRegressor

        allowed = sorted(RandomForestRegressor().get_params())
        bad = sorted(set(options["rf"]) - set(allowed))
        if bad:
            raise LoopError(
                f"unknown option(s) {bad} for model 'rf'",
                f"RandomForestRegressor takes: {', '.join(allowed)}",
            )
    for m in models:
        if m in BUILTIN_MODELS:
            continue
        try:
            make_surrogate(family_of(m), options.get(m, {}))
        except (UnknownSurrogateError, ValueError, TypeError) as err:
            raise LoopError(
                f"model '{m}': {err}", "fix the --option values for that model"
            ) from None


def hardware(device: str) -> dict[str, Any]:
    """CPU model and core count, torch version and, on CUDA, the GPU's name."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
    }
    gpu = f", {info['gpu']}" if info["gpu"] else ""
    info["summary"] = f"{cpu} ({cores} cores){gpu}"
    return info


@dataclass(frozen=True)
class SurrogateBenchmark:
    """What to run: models, their options and the split protocol.

    Attributes:
        folds_run: Run only the first this many folds (`None`: all).
        fold_numbers: Run only these folds, numbered from 1 (`None`: all); excludes
            `folds_run`. Lets the folds of one protocol be spread over several runs.
        train_size: Subsample each training fold to this many rows (`None`: all).
    """

    models: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: SplitKind = "kfold"
    folds: int = 5
    folds_run: int | None = None
    fold_numbers: tuple[int, ...] | None = None
    split_seed: int = 18012019
    test_fraction: float = 0.2
    train_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.folds_run is not None and self.folds_run < 1:
            raise LoopError(f"--folds-run must be at least 1, got {self.folds_run}")
        if self.fold_numbers is not None:
            if self.folds_run is not None:
                raise LoopError(
                    "--fold and --folds-run both pick folds", "pass one of them, not both"
                )
            if not self.fold_numbers:
                raise LoopError("--fold names no fold", "pass --fold N, N from 1")
            bad = [n for n in self.fold_numbers if n < 1]
            if bad:
                raise LoopError(
                    f"--fold {bad[0]}: folds are numbered from 1", "pass --fold 1 or more"
                )
            twice = sorted({n for n in self.fold_numbers if self.fold_numbers.count(n) > 1})
            if twice:
                raise LoopError(f"--fold {twice[0]} is named twice", "name each fold once")
        if self.train_size is not None and self.train_size < 2:
            raise LoopError(f"--train-size must be at least 2, got {self.train_size}")

    def to_json(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "options": {m: dict(o) for m, o in self.options.items()},
            "split": self.split,
            "folds": self.folds,
            "folds_run": self.folds_run,
            "fold_numbers": list(self.fold_numbers) if self.fold_numbers is not None else None,
            "split_seed": self.split_seed,
            "test_fraction": self.test_fraction,
            "train_size": self.train_size,
            "seed": self.seed,
            "device": self.device,
            "pretrained": self.pretrained,
        }


@dataclass
class Prediction:
    """One model's test predictions in one fold: `n_test` means and (calibrated) sigmas.

    Attributes:
        y: The `n_test` true values, once scored.
    """

    mean: np.ndarray
    sigma: np.ndarray
    sigma_scale: float
    fit_seconds: float
    predict_seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    y: np.ndarray | None = None
    #: Other calibration factors the fit computed but did not apply (name -> factor).
    alt_scales: dict[str, float] = field(default_factory=dict)
    #: For a model with an error model: the sigmas without it (the networks' own spread,
    #: calibrated by its own factor), scored beside the error model's.
    sigma_plain: np.ndarray | None = None


def _fit_mean(ytr: np.ndarray, n_test: int) -> Prediction:
    t0 = time.perf_counter()
    mu, sd = float(ytr.mean()), float(ytr.std(ddof=1)) if ytr.size > 1 else 0.0
    t1 = time.perf_counter()
    mean, sigma = np.full(n_test, mu), np.full(n_test, sd)
    return Prediction(mean, sigma, 1.0, t1 - t0, time.perf_counter() - t1)


def _fit_rf(
    Xtr: torch.Tensor, ytr: np.ndarray, Xte: torch.Tensor, opts: dict[str, Any], seed: int
) -> Prediction:
    from sklearn.ensemble import RandomForestRegressor

    from loop.benchmark.composition_features import features_for

    params = {**RF_DEFAULTS, "random_state": seed, **opts}
    t0 = time.perf_counter()
    rf = RandomForestRegressor(**params)
    rf.fit(features_for(Xtr.numpy()), ytr)
    t1 = time.perf_counter()
    means, sigmas = [], []
    for i in range(0, Xte.shape[0], CHUNK):
        F = features_for(Xte[i : i + CHUNK].numpy())
        per_tree = np.stack([t.predict(F) for t in rf.estimators_])  # `trees x chunk`
        means.append(per_tree.mean(axis=0))
        sigmas.append(per_tree.std(axis=0))
    t2 = time.perf_counter()
    info = {"n_estimators": len(rf.estimators_), "n_features": int(rf.n_features_in_)}
    return Prediction(np.concatenate(means), np.concatenate(sigmas), 1.0, t1 - t0, t2 - t1, info)


def _model_place(model: Any) -> tuple[torch.dtype, torch.device]:
    import torch

    train = getattr(model, "train_inputs", None)
    if train:
        return train[0].dtype, train[0].device
    for p in model.parameters():
        return p.dtype, p.device
    return torch.float32, torch.device("cpu")


def _plain(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return isinstance(v, (int, float, str, bool)) or v is None


def _fit_registry(
    name: str,
    opts: dict[str, Any],
    Xtr: torch.Tensor,
    ytr: np.ndarray,
    Xte: torch.Tensor,
    seed: int,
    device: str,
    warm_start: dict[str, Any] | None,
    graphs: Any = None,
    rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> Prediction:
    import torch

    from surrogates import make_surrogate
    from surrogates.featurizers import ELEMNET_ELEMENTS

    family = family_of(name)
    s = make_surrogate(family, opts)
    names: list[str] | None = list(ELEMNET_ELEMENTS)
    if s.needs_structures:
        # the inputs are row indices into the table's crystal graphs
        if graphs is None:
            raise LoopError(
                f"model '{name}' reads crystal structures, but the data are compositions",
                "give a CSV with a CIF column (--input cif) or a JSON table of structures",
            )
        s.set_structures(graphs)
        assert rows is not None
        Xtr = torch.as_tensor(rows[0], dtype=torch.float32).unsqueeze(-1)
        Xte = torch.as_tensor(rows[1], dtype=torch.float32).unsqueeze(-1)
        bounds = torch.tensor([[0.0], [float(len(graphs) - 1)]], dtype=torch.double)
        names = None
    else:
        d = Xtr.shape[1]
        bounds = torch.stack([torch.zeros(d), torch.ones(d)]).double()
    Y = torch.as_tensor(ytr, dtype=torch.float64 if family == "gp" else torch.float32)
    X = Xtr.double() if family == "gp" else Xtr
    t0 = time.perf_counter()
    fit = s.fit(
        X,
        Y.reshape(-1, 1),
        bounds=bounds,
        seed=seed,
        input_names=names,
        device=device,
        warm_start=warm_start,
    )
    t1 = time.perf_counter()
    model: Any = fit.model
    model.eval()
    dtype, dev = _model_place(model)
    means, sigmas = _predict(model, Xte, dtype, dev)
    t2 = time.perf_counter()
    info = {k: v for k, v in fit.info.items() if _plain(v)}
    em = getattr(model, "error_model", None)
    # with an error model its factor calibrates what is scored, and the plain spread is
    # scored beside it
    key = "error_model_scale" if em is not None else "sigma_scale"
    scale = float(fit.info.get(key, 1.0) or 1.0)
    fit_s = float(fit.info.get("fit_seconds", t1 - t0))
    info["fit_call_seconds"] = round(t1 - t0, 4)
    chosen = fit.info.get("calibration")
    alt = {
        str(k): float(v)
        for k, v in (fit.info.get(key + "s") or {}).items()
        if k != chosen and isinstance(v, (int, float))
    }
    plain = None
    if em is not None:
        model.set_error_model(None)
        plain = _predict(model, Xte, dtype, dev)[1]
        model.set_error_model(em)
    return Prediction(means, sigmas, scale, fit_s, t2 - t1, info, alt_scales=alt, sigma_plain=plain)


def _predict(
    model: Any, X: torch.Tensor, dtype: torch.dtype, dev: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """`n` posterior means and sigmas; networks that predict their noise (or carry an error
    model) are scored on their predictive distribution."""
    import torch

    means, sigmas = [], []
    with torch.no_grad():
        for i in range(0, X.shape[0], CHUNK):
            noisy = bool(getattr(model, "predicts_noise", False))
            xb = X[i : i + CHUNK].to(device=dev, dtype=dtype)
            post: Any = model.posterior(xb, observation_noise=noisy)
            means.append(post.mean.reshape(-1).double().cpu().numpy())
            sigmas.append(post.variance.clamp_min(0).sqrt().reshape(-1).double().cpu().numpy())
    return np.concatenate(means), np.concatenate(sigmas)


def _clean(x: Any) -> Any:
    """NaN and infinities become `None` so the results are strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def _summary(folds: list[dict[str, Any]], key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = [f[key] for f in folds if f.get(key)]
    if not rows:
        return {}, {}
    mean, std = {}, {}
    for m in rows[0]:
        vals = np.asarray([math.nan if r.get(m) is None else r[m] for r in rows], dtype=np.float64)
        ok = vals[np.isfinite(vals)]
        mean[m] = float(ok.mean()) if ok.size else math.nan
        std[m] = float(ok.std(ddof=1)) if ok.size > 1 else math.nan
    return mean, std


def summarize_folds(r: dict[str, Any]) -> None:
    """Fill a model's summary (mean and std over folds, mean fit and prediction times, total
    wall time, mean spread factor) from its per-fold documents `r["folds"]`, in place."""
    folds = r["folds"]
    r["mean"], r["std"] = _summary(folds, "metrics")
    r["mean_raw"], r["std_raw"] = _summary(folds, "metrics_raw")
    r["mean_plain"], r["std_plain"] = _summary(folds, "metrics_without_error_model")
    alt_names = sorted({n for f in folds for n in f.get("metrics_alt", {})})
    r["alt"] = {}
    for name in alt_names:
        per = [{"metrics": f["metrics_alt"].get(name)} for f in folds]
        mean, std = _summary(per, "metrics")
        scales = [f["sigma_scale_alt"][name] for f in folds if name in f["sigma_scale_alt"]]
        r["alt"][name] = {"mean": mean, "std": std, "sigma_scale": float(np.mean(scales))}
    for key in ("fit_seconds", "predict_seconds", "pred_per_s", "wall_seconds"):
        vals = [f[key] for f in folds if f[key] is not None]
        r["mean"][key] = float(np.mean(vals)) if vals else None
    r["wall_seconds"] = float(sum(f["wall_seconds"] for f in folds))
    r["sigma_scale"] = float(np.mean([f["sigma_scale"] for f in folds]))


def plan_splits(
    bench: SurrogateBenchmark, data: CompositionTable, test_data: CompositionTable | None = None
) -> list[Split]:
    """The splits that will run: indices into `data` (then `test_data`, after `data`'s rows).

    Raises:
        LoopError: A split the rows cannot make, `folds_run` or a `fold_numbers` entry above
            the fold count, or a `train_size` above the smallest training fold.
    """
    if test_data is None:
        splits = make_splits(
            len(data),
            kind=bench.split,
            folds=bench.folds,
            split_seed=bench.split_seed,
            test_fraction=bench.test_fraction,
            groups=data.groups,
        )
    else:
        n1 = len(data)
        splits = [Split(0, np.arange(n1), n1 + np.arange(len(test_data)))]
    if bench.folds_run is not None:
        if bench.folds_run > len(splits):
            raise LoopError(
                f"--folds-run {bench.folds_run} is more than the {len(splits)} fold(s) of this "
                "split",
                f"pass --folds-run {len(splits)} or less",
            )
        splits = splits[: bench.folds_run]
    if bench.fold_numbers is not None:
        over = [n for n in bench.fold_numbers if n > len(splits)]
        if over:
            raise LoopError(
                f"--fold {over[0]}: this split has {len(splits)} fold(s)",
                f"pass --fold 1 to {len(splits)}",
            )
        splits = [splits[n - 1] for n in sorted(bench.fold_numbers)]
    if bench.train_size is not None:
        smallest = min(len(s.train) for s in splits)
        if bench.train_size > smallest:
            raise LoopError(
                f"--train-size {bench.train_size} is more than the {smallest} training rows of "
                "the smallest fold",
                f"pass --train-size {smallest} or less, or leave it out",
            )
    return splits


def run_surrogate_benchmark(
    bench: SurrogateBenchmark,
    data: CompositionTable,
    *,
    test_data: CompositionTable | None = None,
    warm_start: dict[str, Any] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Prediction]]:
    """Fit and score every model on every fold.

    Args:
        test_data: Train on all of `data` and test on this table instead of splitting.
        warm_start: A pretrained model's state for the registry's neural families.
        progress: Called with (done, total, label) before each model fit and at the end.

    Returns:
        The results document (JSON-ready, NaN written as null) and the first fold's test
        predictions per model (for the plots).
    """
    import torch

    splits = plan_splits(bench, data, test_data)
    if test_data is None:
        X_all, y_all = data.X, data.y
    else:
        X_all = torch.cat([data.X, test_data.X])
        y_all = np.concatenate([data.y, test_data.y])

    total = len(splits) * len(bench.models)
    n_folds = _fold_count(bench) if test_data is None else 1
    done = 0
    results: dict[str, dict[str, Any]] = {
        m: {"options": bench.options.get(m, {}), "folds": []} for m in bench.models
    }
    first: dict[str, Prediction] = {}
    for sp in splits:
        train = sp.train
        if bench.train_size is not None:
            rng = np.random.default_rng([bench.seed, sp.fold])
            train = np.sort(rng.choice(train, size=bench.train_size, replace=False))
        Xtr, ytr = X_all[train], y_all[train]
        Xte, yte = X_all[sp.test], y_all[sp.test]
        for m in bench.models:
            if progress:
                progress(done, total, f"fold {sp.fold + 1}/{n_folds} {m}")
            opts = bench.options.get(m, {})
            t0 = time.perf_counter()
            if m == "mean":
                pred = _fit_mean(ytr, len(yte))
            elif m == "rf":
                pred = _fit_rf(Xtr, ytr, Xte, opts, bench.seed)
            else:
                ws = warm_start if family_of(m) not in NOT_WARM_STARTED else None
                pred = _fit_registry(
                    m,
                    opts,
                    Xtr,
                    ytr,
                    Xte,
                    bench.seed,
                    bench.device,
                    ws,
                    graphs=data.graphs,
                    rows=(np.asarray(train), np.asarray(sp.test)),
                )
                pred.info["warm_started"] = ws is not None
            wall = time.perf_counter() - t0
            fold_doc: dict[str, Any] = {
                "fold": sp.fold,
                "n_train": int(len(train)),
                "n_test": int(len(yte)),
                "fit_seconds": round(pred.fit_seconds, 4),
                "predict_seconds": round(pred.predict_seconds, 4),
                "pred_per_s": len(yte) / pred.predict_seconds if pred.predict_seconds > 0 else None,
                "wall_seconds": round(wall, 3),
                "sigma_scale": pred.sigma_scale,
                "metrics": regression_metrics(yte, pred.mean, pred.sigma, LEVELS),
                "metrics_raw": None,
                "info": pred.info,
            }
            raw = pred.sigma / pred.sigma_scale
            if pred.sigma_scale != 1.0:
                fold_doc["metrics_raw"] = regression_metrics(yte, pred.mean, raw, LEVELS)
            # the same predictions under the calibrations the fit computed but did not apply
            fold_doc["metrics_alt"] = {
                name: regression_metrics(yte, pred.mean, raw * f, LEVELS)
                for name, f in sorted(pred.alt_scales.items())
            }
            fold_doc["sigma_scale_alt"] = dict(sorted(pred.alt_scales.items()))
            if pred.sigma_plain is not None:
                fold_doc["metrics_without_error_model"] = regression_metrics(
                    yte, pred.mean, pred.sigma_plain, LEVELS
                )
            results[m]["folds"].append(fold_doc)
            if sp is splits[0]:
                pred.y = yte
                first[m] = pred
            done += 1
    if progress:
        progress(done, total, "done")
    for r in results.values():
        summarize_folds(r)
    doc = {
        "format": RESULTS_FORMAT,
        "settings": bench.to_json(),
        "data": data.describe(),
        "test_data": test_data.describe() if test_data is not None else None,
        "folds_run": [sp.fold for sp in splits],
        "folds_total": len(splits) if test_data is not None else _fold_count(bench),
        "hardware": hardware(bench.device),
        "models": results,
    }
    return _clean(doc), first


def _fold_count(bench: SurrogateBenchmark) -> int:
    return 1 if bench.split == "fixed" else bench.folds


def calibration_points(pred: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """The calibration curve of a first-fold prediction (expected, observed proportions)."""
    assert pred.y is not None
    return calibration_curve(pred.y, pred.mean, pred.sigma, LEVELS)


#: Settings that may differ between runs that `merge_results` joins: which folds each ran.
_FOLD_PICKS = ("folds_run", "fold_numbers")


def merge_results(
    runs: list[tuple[str, dict[str, Any]]], models: list[str] | None = None
) -> dict[str, Any]:
    """One results document from runs of one protocol over different folds (`--fold`).

    Args:
        runs: (file name, results document) pairs, as `run_surrogate_benchmark` writes them
            (format `RESULTS_FORMAT`, checked by the reader: `report.load_results`).
        models: Merge only these models (each run must hold them, with the same options); the
            runs may then differ in their other models, e.g. a baseline run on one fold only.
            None: every run must hold the same models.

    Returns:
        The document of all their folds, as one run over them would write it, with each fold
        marked with the hardware it ran on and `merged_from` listing the runs (and the models
        each one had that were left out).

    Raises:
        LoopError: Fewer than two runs, runs on other data or under other settings or models,
            a picked model missing from a run, or a fold run twice.
    """
    if len(runs) < 2:
        raise LoopError("merging needs at least two results files", "name two or more")
    base_name, base = runs[0]
    picked = list(dict.fromkeys(models)) if models else None
    for name, doc in runs:
        missing = [m for m in picked or [] if m not in doc["models"]]
        if missing:
            raise LoopError(
                f"{name}: has no model {', '.join(map(repr, missing))} "
                f"(it ran {', '.join(doc['models'])})",
                "pick with --model only models that every run holds",
            )

    def same(doc: dict[str, Any], key: str) -> Any:
        if key == "settings":
            s = {k: v for k, v in doc["settings"].items() if k not in _FOLD_PICKS}
            if picked:
                s["models"] = picked
                s["options"] = {m: o for m, o in s["options"].items() if m in picked}
            return s
        if key == "data":
            return {k: v for k, v in (doc.get(key) or {}).items() if k != "path"}
        return doc.get(key)

    seen: dict[int, str] = {}
    for name, doc in runs:
        for key in ("data", "test_data", "settings", "folds_total"):
            a, b = same(base, key), same(doc, key)
            if a != b:
                diff = (
                    sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                    if isinstance(a, dict) and isinstance(b, dict)
                    else [key]
                )
                raise LoopError(
                    f"{name}: {key} differs from {base_name} ({', '.join(map(str, diff))})",
                    "merge only runs of one protocol, data and models that differ in their "
                    "folds (--model picks the models that runs with other baselines share)",
                )
        for fold in doc["folds_run"]:
            if fold in seen:
                raise LoopError(
                    f"{name}: fold {fold + 1} was run in {seen[fold]} too",
                    "merge each fold once: leave one of the two files out",
                )
            seen[fold] = name
    merged: dict[str, dict[str, Any]] = {
        m: {"options": base["models"][m]["options"], "folds": []} for m in picked or base["models"]
    }
    for _, doc in runs:
        for m in merged:  # the settings check made every run hold these
            for fold_doc in doc["models"][m]["folds"]:
                merged[m]["folds"].append({**fold_doc, "hardware": doc["hardware"]["summary"]})
    for r in merged.values():
        r["folds"].sort(key=lambda f: f["fold"])
        summarize_folds(r)
    summaries = list(dict.fromkeys(doc["hardware"]["summary"] for _, doc in runs))
    hardware_doc = {**base["hardware"], "summary": "; ".join(summaries)}
    settings = {
        **same(base, "settings"),
        "folds_run": None,
        "fold_numbers": sorted(f + 1 for f in seen),
    }
    return _clean(
        {
            "format": base["format"],
            "settings": settings,
            "data": base["data"],
            "test_data": base.get("test_data"),
            "folds_run": sorted(seen),
            "folds_total": base["folds_total"],
            "hardware": hardware_doc,
            "models": merged,
            "merged_from": [
                {
                    "file": name,
                    "command": doc.get("command"),
                    "folds_run": doc["folds_run"],
                    "hardware": doc["hardware"]["summary"],
                    "wall_seconds": doc.get("wall_seconds"),
                    "models_left_out": [m for m in doc["models"] if m not in merged] or None,
                }
                for name, doc in runs
            ],
            "wall_seconds": sum(doc.get("wall_seconds") or 0.0 for _, doc in runs),
        }
    )
