"""Tables and plots of a surrogate benchmark's results document."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from loop.benchmark.surrogate import Prediction

__all__ = ["COLUMNS", "summary_rows", "budget_text", "surrogate_markdown", "surrogate_plots"]

#: Table columns: (header, key in a summary row).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("MAE", "mae"),
    ("RMSE", "rmse"),
    ("R2", "r2"),
    ("miscal. area", "miscal_area"),
    ("NLL", "nll"),
    ("Spearman", "spearman"),
    ("cov90", "cov90"),
    ("fit s", "fit_seconds"),
    ("pred/s", "pred_per_s"),
    ("hardware", "hardware"),
    ("budget", "budget"),
    ("wall s", "wall_seconds"),
)
_METRICS = ("mae", "rmse", "r2", "miscal_area", "nll", "spearman", "cov90")


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _pm(mean: Any, std: Any) -> str:
    if std is None or mean is None:
        return _num(mean)
    return f"{_num(mean)} ± {_num(std, 2)}"


def budget_text(doc: dict[str, Any], model: str | None = None) -> str:
    """What limited the run: folds run of all folds, row limit, training size, fit time budget."""
    parts = [f"folds {len(doc['folds_run'])}/{doc['folds_total']}"]
    opts = doc["models"][model]["options"] if model else {}
    if opts.get("time_budget"):
        parts.append(f"fit <= {opts['time_budget']} s")
    limited = doc["data"]["dropped"].get("left out by --limit")
    if limited:
        parts.append(f"limit {doc['data']['rows_used']} rows")
    if doc["settings"].get("train_size"):
        parts.append(f"train {doc['settings']['train_size']}")
    return ", ".join(parts)


def _label(name: str, options: dict[str, Any]) -> str:
    if not options:
        return name
    return f"{name} ({', '.join(f'{k}={v}' for k, v in options.items())})"


def _calibration_name(r: dict[str, Any]) -> str:
    """' rms' or ' curve': the calibration the model applied, from its first fold's fit info."""
    folds = r.get("folds") or []
    name = (folds[0].get("info") or {}).get("calibration") if folds else None
    return f" {name}" if isinstance(name, str) and name != "none" else ""


def _noise_text(r: dict[str, Any]) -> str:
    """', noise xW' with the mean weight of the predicted noise over the folds, for networks
    that predict their noise; else ''."""
    ws = [
        (f.get("info") or {}).get("noise_scale")
        for f in r.get("folds") or []
        if (f.get("info") or {}).get("noise")
    ]
    ws = [w for w in ws if isinstance(w, (int, float))]
    return f", noise x{_num(sum(ws) / len(ws), 3)}" if ws else ""


def summary_rows(doc: dict[str, Any]) -> list[dict[str, str]]:
    """One row per model (and one more with raw sigmas where a model recalibrated), as text.

    `model` holds the name with its options, `name` without them; the rest are `COLUMNS`' keys.
    """
    hw = doc["hardware"]["summary"]
    rows: list[dict[str, str]] = []
    for name, r in doc["models"].items():
        budget = budget_text(doc, name)
        variants = [("", r["mean"], r["std"])]
        if r.get("mean_raw"):
            scale = _num(r["sigma_scale"], 3)
            how = _calibration_name(r)
            nw = _noise_text(r)
            variants = [
                (f" [calibrated{how}, x{scale}{nw}]", r["mean"], r["std"]),
                *(
                    (
                        f" [calibrated {alt}, x{_num(a['sigma_scale'], 3)}{nw}]",
                        a["mean"],
                        a["std"],
                    )
                    for alt, a in sorted((r.get("alt") or {}).items())
                ),
                (f" [raw sigma{nw}]", r["mean_raw"], r["std_raw"]),
            ]
        if r.get("mean_plain"):
            variants.insert(1, (" [without error model]", r["mean_plain"], r["std_plain"]))
        for suffix, mean, std in variants:
            row = {"model": _label(name, r["options"]) + suffix, "name": name + suffix}
            for m in _METRICS:
                row[m] = _pm(mean.get(m), std.get(m))
            row["fit_seconds"] = _num(r["mean"].get("fit_seconds"))
            row["pred_per_s"] = _num(r["mean"].get("pred_per_s"), 3)
            row["hardware"] = hw
            row["budget"] = budget
            row["wall_seconds"] = _num(r["wall_seconds"])
            rows.append(row)
    return rows


def surrogate_markdown(doc: dict[str, Any]) -> str:
    """results.md: what ran on which data, and the table (mean ± std over folds)."""
    data = doc["data"]
    lines = [
        "# Surrogate benchmark",
        "",
        f"- data: `{data['path']}` (sha256 `{data['sha256'][:16]}...`), input "
        f"`{data['input']}`, target `{data['target']}`: {data['rows_read']} rows read, "
        f"{data['rows_used']} used; dropped: {_drops(data['dropped'])}",
    ]
    if doc.get("test_data"):
        t = doc["test_data"]
        lines.append(
            f"- test data: `{t['path']}` (sha256 `{t['sha256'][:16]}...`): {t['rows_read']} "
            f"rows read, {t['rows_used']} used; dropped: {_drops(t['dropped'])}"
        )
    s = doc["settings"]
    split = "train on data, test on test data" if doc.get("test_data") else s["split"]
    lines += [
        f"- split: {split}; folds run: {[f + 1 for f in doc['folds_run']]} of "
        f"{doc['folds_total']}; split seed {s['split_seed']}, model seed {s['seed']}"
        + (f"; training rows per fold: {s['train_size']}" if s.get("train_size") else ""),
        f"- hardware: {doc['hardware']['summary']}, torch {doc['hardware']['torch']}, "
        f"device {s['device']}"
        + (f"; pretrained start: {s['pretrained']}" if s["pretrained"] else ""),
        f"- wall time: {_num(doc.get('wall_seconds'))} s",
        *(
            f"- merged from `{r['file']}`: folds {[f + 1 for f in r['folds_run']]}, "
            f"{r['hardware']}, {_num(r.get('wall_seconds'))} s wall"
            + (f"; left out: {', '.join(r['models_left_out'])}" if r.get("models_left_out") else "")
            for r in doc.get("merged_from") or []
        ),
        "",
        "Metrics are the mean ± std over folds. Miscal. area: mean |observed - expected| "
        "proportion inside central Gaussian intervals (Tran et al. 2020); NLL: mean Gaussian "
        "negative log-likelihood; Spearman: rank correlation of |error| with sigma; cov90: "
        "fraction inside the 90% interval. Calibrated rows multiply sigma by a factor fitted on "
        "the model's own held-out rows: rms = sqrt(mean z^2) (Gaussian maximum likelihood), "
        "curve = the factor with the least held-out miscalibration area; the model applies the "
        "first row's, the others are shown for comparison. Raw-sigma rows undo it (networks "
        "that predict their noise keep the weight of the noise fitted before it, noise_scale). "
        "fit s and pred/s of rf include computing its descriptors from the element fractions.",
        "",
        "| " + " | ".join(h for h, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in summary_rows(doc):
        lines.append("| " + " | ".join(row[k] for _, k in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _drops(dropped: dict[str, int]) -> str:
    return ", ".join(f"{v} ({k})" for k, v in dropped.items()) or "none"


def surrogate_plots(
    first: dict[str, Prediction], out_dir: Path, target: str = "target"
) -> list[Path]:
    """parity.png (one panel per model) and calibration.png (one curve per model), first fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loop.benchmark.surrogate import calibration_points

    names = list(first)
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4 * nrow), squeeze=False)
    for ax, name in zip(axes.flat, names):
        p = first[name]
        assert p.y is not None
        lo = float(min(p.y.min(), p.mean.min()))
        hi = float(max(p.y.max(), p.mean.max()))
        ax.scatter(p.y, p.mean, s=3 if p.y.size < 5000 else 0.5, alpha=0.4, rasterized=True)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        mae = float(np.mean(np.abs(p.y - p.mean)))
        ax.set_title(f"{name} (MAE {mae:.3g}, n = {p.y.size})")
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel(f"predicted {target}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    parity = out_dir / "parity.png"
    fig.savefig(parity, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name in names:
        exp, obs = calibration_points(first[name])
        area = float(np.mean(np.abs(obs - exp)))
        ax.plot(exp, obs, lw=1.5, label=f"{name} (area {area:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="ideal")
    ax.set_xlabel("expected proportion in interval")
    ax.set_ylabel("observed proportion in interval")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    calib = out_dir / "calibration.png"
    fig.savefig(calib, dpi=110)
    plt.close(fig)
    return [parity, calib]
