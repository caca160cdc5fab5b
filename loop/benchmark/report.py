"""Turn a benchmark's results document into numbers, a markdown table and plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loop.benchmark.metrics import (
    Interval,
    acceleration_factor,
    experiments_to_reach,
    first_hit,
    mean_interval,
    random_top,
    top_curve,
)
from loop.errors import LoopError

__all__ = ["Summary", "summarize", "markdown", "plot", "load_results", "merge_results"]

LEVELS = (0.5, 0.8)
PEER_NAMES = ("baybe", "ax")


@dataclass
class Summary:
    """The scores of one strategy on one data set, over its seeds."""

    dataset: str
    strategy: str
    batch_size: int
    seeds: int
    n_pool: int
    n_targets: int
    af: dict[float, Interval | None] = field(default_factory=dict)
    reached: dict[float, int] = field(default_factory=dict)
    peak_ef: Interval | None = None
    peak_at: int = 0
    first_top1: Interval | None = None
    first_top1_reached: int = 0
    experiments: Interval | None = None
    rounds80: Interval | None = None
    proposals_per_s: float | None = None
    wall_seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    curve: np.ndarray | None = None
    curve_low: np.ndarray | None = None
    curve_high: np.ndarray | None = None

    @property
    def label(self) -> str:
        return self.strategy if self.batch_size == 1 else f"{self.strategy} q={self.batch_size}"

    def af_text(self, level: float) -> str:
        af = self.af.get(level)
        if af is None:
            return f"not reached by every seed ({self.reached.get(level, 0)}/{self.seeds} did)"
        return af.fmt()

    def to_json(self) -> dict[str, Any]:
        def iv(x: Interval | None) -> dict[str, float] | None:
            if x is None:
                return None
            return {"mean": x.mean, "low": x.low, "high": x.high, "n": x.n}

        return {
            "dataset": self.dataset,
            "strategy": self.strategy,
            "batch_size": self.batch_size,
            "seeds": self.seeds,
            "n_pool": self.n_pool,
            "n_targets": self.n_targets,
            "af": {f"{lv:g}": iv(self.af.get(lv)) for lv in LEVELS},
            "reached": {f"{lv:g}": self.reached.get(lv, 0) for lv in LEVELS},
            "peak_ef": iv(self.peak_ef),
            "peak_at": self.peak_at,
            "first_top1": iv(self.first_top1),
            "first_top1_reached": self.first_top1_reached,
            "experiments": iv(self.experiments),
            "rounds80": iv(self.rounds80),
            "proposals_per_s": self.proposals_per_s,
            "wall_seconds": self.wall_seconds,
            "versions": self.versions,
        }


def load_results(
    path: str | Path, fmt: str = "loop-benchmark/1", writer: str = "loop benchmark campaign"
) -> dict[str, Any]:
    """Read a results document of format `fmt`, as the command `writer` writes it."""
    p = Path(path)
    hint = f"give the results.json that `{writer}` wrote"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise LoopError(f"{p}: cannot read ({err.strerror})", "check the path") from None
    except json.JSONDecodeError as err:
        raise LoopError(f"{p}: not JSON (line {err.lineno}: {err.msg})", hint) from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise LoopError(f"{p} is not a results file of format {fmt} (format {found!r})", hint)
    return doc


def merge_results(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from several runs (same protocol): runs of the same data set add up.

    Raises:
        LoopError: The runs used different protocols, or the same seed of a strategy twice.
    """
    if not docs:
        raise LoopError("no results to merge", "give one or more results.json files")
    out = json.loads(json.dumps(docs[0]))
    seen = {(r["dataset"], r["strategy"], r["batch_size"], r["seed"]) for r in out["runs"]}
    for doc in docs[1:]:
        if _scoring(doc["protocol"]) != _scoring(out["protocol"]):
            raise LoopError(
                "the results were run under different protocols",
                "merge only runs with the same --initial, targets and stopping rule",
            )
        for name, info in doc["datasets"].items():
            if name in out["datasets"] and out["datasets"][name]["targets"] != info["targets"]:
                raise LoopError(
                    f"data set '{name}' differs between the results files",
                    "merge runs of the same data set spec only",
                )
            out["datasets"].setdefault(name, info)
        for r in doc["runs"]:
            key = (r["dataset"], r["strategy"], r["batch_size"], r["seed"])
            if key in seen:
                raise LoopError(
                    f"seed {r['seed']} of {r['strategy']} (q={r['batch_size']}) on "
                    f"{r['dataset']} appears in two results files",
                    "merge runs with disjoint strategies or seeds",
                )
            seen.add(key)
            out["runs"].append(r)
        out["wall_seconds"] = out.get("wall_seconds", 0) + doc.get("wall_seconds", 0)
        out.setdefault("strategies", [])
        for s in doc.get("strategies", []):
            if s not in out["strategies"]:
                out["strategies"].append(s)
    return out


def _scoring(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol without the seed numbers: runs with other seeds may be merged."""
    return {k: v for k, v in protocol.items() if k not in ("seeds", "seed0")}


def _seed_text(seeds: list[int]) -> str:
    s = sorted(set(seeds))
    if s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}..{s[-1]}" if len(s) > 1 else str(s[0])
    return ", ".join(map(str, s))


def _rounds(n_init: int, q: int, steps: int | None) -> float | None:
    if steps is None:
        return None
    return 1 + math.ceil(max(0, steps - n_init) / q)


def summarize(doc: dict[str, Any]) -> list[Summary]:
    """Scores per data set and strategy: random first, then the default, others, peers."""
    n_init = int(doc["protocol"]["n_initial"])
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in doc["runs"]:
        groups.setdefault((r["dataset"], r["strategy"], int(r["batch_size"])), []).append(r)
    out = []
    for (ds, strat, q), runs in groups.items():
        info = doc["datasets"][ds]
        n, targets, top1 = info["n_pool"], info["targets"], info["top1"]
        length = int(info["max_experiments"])
        curves = np.stack([top_curve(r["order"], targets, length) for r in runs])
        s = Summary(ds, strat, q, len(runs), n, len(targets))
        for lv in LEVELS:
            steps = [experiments_to_reach(r["order"], targets, lv) for r in runs]
            s.reached[lv] = sum(1 for x in steps if x is not None)
            s.af[lv] = acceleration_factor(steps, n, lv)
            if lv == 0.8 and all(x is not None for x in steps):
                s.rounds80 = mean_interval(
                    [float(_rounds(n_init, q, x) or 0) for r, x in zip(runs, steps)]
                )
        ef = curves / random_top(n, length)
        # the peak after the planner's own first pick: the initial points are shared luck
        mean_ef = ef.mean(axis=0)
        mean_ef[: min(n_init, length - 1)] = -np.inf
        k = int(np.argmax(mean_ef))
        s.peak_ef, s.peak_at = mean_interval(ef[:, k]), k + 1
        hits = [first_hit(r["order"], top1) for r in runs]
        s.first_top1_reached = sum(1 for h in hits if h is not None)
        s.first_top1 = mean_interval([float(h) for h in hits if h is not None])
        s.experiments = mean_interval([float(len(r["order"])) for r in runs])
        secs = sum(sum(r.get("seconds", [])) for r in runs)
        props = sum(int(r.get("proposals", 0)) for r in runs)
        s.proposals_per_s = props / secs if secs > 0 else None
        s.wall_seconds = round(sum(float(r.get("wall_seconds", 0.0)) for r in runs), 1)
        s.versions = runs[0].get("versions", {}) or {}
        band = [mean_interval(curves[:, i]) for i in range(length)]
        s.curve = curves.mean(axis=0)
        s.curve_low = np.asarray([b.low for b in band])
        s.curve_high = np.asarray([b.high for b in band])
        out.append(s)
    names = list(doc["datasets"])

    def rank(s: Summary) -> tuple[int, int, str, int]:
        kind = {"random": 0, "default": 1}.get(s.strategy, 3 if s.strategy in PEER_NAMES else 2)
        return (names.index(s.dataset), kind, s.strategy, s.batch_size)

    return sorted(out, key=rank)


def markdown(doc: dict[str, Any], summaries: list[Summary]) -> str:
    """The results as markdown: one table of scores, the data sets and the protocol."""
    p = doc["protocol"]
    lines = [
        "| data set | strategy | seeds | AF 50% | AF 80% | peak EF (at experiment) | "
        "first top-1% hit | experiments run | rounds to 80% | proposals/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        hit = s.first_top1.fmt(1) if s.first_top1 and s.first_top1.n else "n/a"
        if s.first_top1_reached < s.seeds:
            hit += f" ({s.first_top1_reached}/{s.seeds} seeds hit)"
        pps = f"{s.proposals_per_s:.1f}" if s.proposals_per_s else "-"
        lines.append(
            f"| {s.dataset} | {s.label} | {s.seeds} | {s.af_text(0.5)} | {s.af_text(0.8)} | "
            f"{s.peak_ef.fmt() if s.peak_ef else 'n/a'} ({s.peak_at}) | {hit} | "
            f"{s.experiments.fmt(1) if s.experiments else 'n/a'} | "
            f"{s.rounds80.fmt(1) if s.rounds80 else '-'} | {pps} | {s.wall_seconds:g} |"
        )
    lines += [
        "",
        "| data set | unique inputs (rows) | objective | targets (top "
        f"{p['target_fraction']:.0%}) | top-{p['hit_fraction']:.0%} set | experiments at most |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in doc["datasets"].items():
        lines.append(
            f"| {name} | {d['n_pool']} ({d['n_rows']}) | {d['direction']} {d['objective']} | "
            f"{len(d['targets'])} | {len(d['top1'])} | {d['max_experiments']} |"
        )
    lines += [
        "",
        f"Protocol: {p['n_initial']} random initial experiments per seed (the same for every "
        f"strategy), seeds {_seed_text([r['seed'] for r in doc['runs']])}; a seed stops once "
        f"{p['stop_found']:.0%} of the targets are found or {p['max_fraction']:.0%} of the pool "
        "is spent. AF = experiments random search needs on average to reach the level "
        "(level x pool size) / mean experiments the strategy needed; brackets are 95% confidence "
        "intervals over seeds. EF = Top% / (experiments / pool size); its "
        "peak is taken after the initial experiments.",
    ]
    legend = []
    for st in doc.get("strategies", []):
        if st["kind"] == "model" and st.get("model"):
            m = st["model"]
            opts = ", ".join(f"{k}={v}" for k, v in (m.get("acquisition_options") or {}).items())
            what = f"surrogate {m['surrogate']}, acquisition {m['acquisition']}"
            what += f" ({opts})" if opts else ""
            if st["name"] == "default":
                what = "the campaign default, " + what
        elif st["kind"] == "peer":
            vers = next(
                (r.get("versions") for r in doc["runs"] if r["strategy"] == st["name"]), None
            )
            what = "peer" + (
                " (" + ", ".join(f"{k} {v}" for k, v in vers.items()) + ")" if vers else ""
            )
        else:
            what = "random choice among the unmeasured candidates"
        item = f"`{st['name']}`: {what}"
        if item not in legend:
            legend.append(item)
    if legend:
        lines += ["", "Strategies: " + "; ".join(legend) + "."]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], summaries: list[Summary], out_dir: Path) -> list[Path]:
    """`top.png` (Top% against experiments) and `ef.png` (EF), one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc["datasets"])
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    paths = []
    for what, fname in (("top", "top.png"), ("ef", "ef.png")):
        fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.8 * nrow), squeeze=False)
        for ax, name in zip(axes.flat, names):
            info = doc["datasets"][name]
            n = info["n_pool"]
            for s in summaries:
                if s.dataset != name or s.curve is None:
                    continue
                assert s.curve_low is not None and s.curve_high is not None
                x = np.arange(1, s.curve.size + 1)
                base = random_top(n, s.curve.size) if what == "ef" else np.ones_like(s.curve)
                (line,) = ax.plot(x, s.curve / base, label=s.label, lw=1.5)
                high = s.curve_high if what == "ef" else np.minimum(s.curve_high, 1.0)
                ax.fill_between(
                    x, s.curve_low / base, high / base, alpha=0.15, color=line.get_color()
                )
            x = np.arange(1, int(info["max_experiments"]) + 1)
            if what == "top":
                ax.plot(x, random_top(n, x.size), "k--", lw=1, label="random (analytic)")
                ax.set_ylabel("Top% (fraction of top-5% found)")
                ax.set_ylim(0, 1.02)
            else:
                ax.axhline(1.0, color="k", ls="--", lw=1, label="random (analytic)")
                ax.set_ylabel("enhancement factor")
            ax.set_title(f"{name} (N = {n})")
            ax.set_xlabel("experiments")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(names) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
