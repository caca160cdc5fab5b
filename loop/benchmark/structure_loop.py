"""`loop benchmark structure-loop`: a closed loop over a crystal-structure pool, replayed.

The pool is a structure table with a measured property (perov_5: `heat_all`); the table is the
oracle. Every seed starts all planners from the same random initial structures, then each
planner proposes batches from the rest of the pool until it has measured `need` of the best
`top` fraction (or spent `max_experiments`):

- `cgcnn-ensemble` (and `cgcnn-mcdropout`): the registry's CGCNN families on the pool's crystal
  graphs, chosen by the campaign's acquisition through `loop.engine.choose_from_pool`, exactly
  as `loop propose` chooses in a `[structures]` campaign; each round's networks start from the
  last round's (warm start);
- `elemnet-ensemble`: the same loop with ElemNet on the structures' element fractions
  (composition only, so polymorphs of one composition look alike to it);
- `random`: structures in a seeded random order.

The figure of merit is the number of experiments (initial ones included) until the `need`-th
top structure is measured, averaged over seeds; runs that never get there count as
`max_experiments` and are reported as misses.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import LoopError

__all__ = [
    "run_structure_loop",
    "STRUCTURE_STRATEGIES",
    "structure_loop_markdown",
    "plot_structure_loop",
]

STRUCTURE_STRATEGIES = ("cgcnn-ensemble", "cgcnn-mcdropout", "elemnet-ensemble", "random")


def _spec(strategy: str, n: int, target: str, direction: str, acquisition: str) -> Any:
    from loop.spec import parse_spec

    raw: dict[str, Any] = {
        "name": "replay",
        "budget": n,
        "objectives": [{"name": target, "direction": direction}],
        "model": {"surrogate": strategy, "acquisition": acquisition},
    }
    if strategy.startswith("cgcnn"):
        raw["structures"] = {"path": "replayed-pool"}
        raw["parameters"] = [{"type": "int", "name": "structure", "low": 0, "high": n - 1}]
    else:
        from surrogates.featurizers import ELEMNET_ELEMENTS

        raw["parameters"] = [
            {"type": "float", "name": el, "low": 0.0, "high": 1.0} for el in ELEMNET_ELEMENTS
        ]
    return parse_spec(raw, f"strategy {strategy}")


def _run_model(
    strategy: str,
    options: dict[str, Any],
    pool_X: Any,
    graphs: Any,
    y: np.ndarray,
    direction: str,
    acquisition: str,
    order: list[int],
    targets: set[int],
    need: int,
    max_exp: int,
    batch: int,
    seed: int,
    warm0: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import torch

    from loop.engine import choose_from_pool
    from loop.space import DesignSpace
    from surrogates import load_builtin, make_surrogate

    load_builtin()
    n = len(y)
    target = "y"
    spec = _spec(strategy, n, target, direction, acquisition)
    space = DesignSpace(spec, pool_X=pool_X)
    sign = -1.0 if direction == "minimize" else 1.0
    Y_all = torch.tensor(sign * y, dtype=torch.double).unsqueeze(-1)
    surrogate = make_surrogate(strategy, options)
    if surrogate.needs_structures:
        surrogate.set_structures(graphs)
    bounds = space.bounds()
    warm = warm0  # a pretrained model's state, or None
    rounds: list[float] = []
    first_warm = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while _found(order, targets) < need and len(order) < max_exp:
            t = time.perf_counter()
            idx = torch.tensor(order)
            fit = surrogate.fit(
                pool_X[idx],
                Y_all[idx],
                bounds=bounds,
                seed=seed * 1000 + len(rounds),
                warm_start=warm,
                input_names=None,
                device="cpu",
            )
            if not rounds:
                first_warm = bool(fit.info.get("warm_start"))
            warm = fit.state
            chosen = set(order)
            available = [i for i in range(n) if i not in chosen]
            q = min(batch, max_exp - len(order), len(available))
            picked, _ = choose_from_pool(
                spec,
                space,
                fit.model,
                pool_X[idx],
                Y_all[idx],
                None,
                available,
                q,
                seed=seed * 1000 + len(rounds),
            )
            order.extend(int(i) for i in picked)
            rounds.append(time.perf_counter() - t)
    return {"round_seconds": rounds, "first_fit_warm": first_warm}


def _pretrain(
    paths: Sequence[Path],
    cif: str,
    target: str,
    direction: str,
    strategies: Sequence[str],
    opts: dict[str, dict[str, Any]],
    budget: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each network strategy's state after `budget` seconds on the pretraining tables."""
    import torch

    from loop.benchmark.structures import load_structure_table
    from surrogates import load_builtin, make_surrogate
    from surrogates.crystal_graph import GraphCache, GraphStore
    from surrogates.featurizers import featurize_formulas

    load_builtin()
    structures, y = load_structure_table(paths, cif=cif, target=target)
    sign = -1.0 if direction == "minimize" else 1.0
    Y = torch.tensor(sign * y, dtype=torch.double).unsqueeze(-1)
    states: dict[str, Any] = {}
    info: dict[str, Any] = {"data": [str(p) for p in paths], "rows": len(y), "budget_s": budget}
    for strategy in strategies:
        if strategy == "random":
            continue
        sur = make_surrogate(strategy, {**opts.get(strategy, {}), "time_budget": budget})
        if sur.needs_structures:
            sur.set_structures(GraphStore(GraphCache().graphs(structures)))
            X = torch.arange(len(y), dtype=torch.double).unsqueeze(-1)
        else:
            X = featurize_formulas([s.composition.formula.replace(" ", "") for s in structures])
        t = time.perf_counter()
        fit = sur.fit(
            X,
            Y,
            bounds=torch.stack([X.min(0).values, X.max(0).values]),
            seed=12345,
            device="cpu",
        )
        states[strategy] = fit.state
        info[strategy] = {
            "seconds": round(time.perf_counter() - t, 1),
            "epochs": fit.info["epochs"],
        }
    return states, info


def _found(order: list[int], targets: set[int]) -> int:
    return sum(1 for i in order if i in targets)


def _experiments_to(order: list[int], targets: set[int], need: int) -> int | None:
    hits = 0
    for k, i in enumerate(order, start=1):
        hits += i in targets
        if hits >= need:
            return k
    return None


def run_structure_loop(
    paths: Sequence[Path],
    *,
    cif: str = "cif",
    target: str = "heat_all",
    direction: str = "minimize",
    strategies: Sequence[str] = ("cgcnn-ensemble", "elemnet-ensemble", "random"),
    seeds: int = 10,
    batch: int = 8,
    n_initial: int = 10,
    top: float = 0.01,
    need: int = 1,
    max_experiments: int = 300,
    limit: int | None = None,
    acquisition: str = "qucb",
    options: dict[str, dict[str, Any]] | None = None,
    progress: Any = None,
    pretrain: Sequence[Path] = (),
    pretrain_budget: float = 600.0,
) -> dict[str, Any]:
    """Experiments each planner needs to find `need` of the top `top` fraction of the pool.

    With `pretrain` (tables of other structures with the same target), every network planner is
    first trained on them for `pretrain_budget` seconds, and each seed's first fit starts from
    those weights, as a campaign with `surrogate_options.pretrained` does.

    Raises:
        LoopError: An unknown strategy, or settings that leave nothing to find.
    """
    import torch

    from loop.benchmark.structures import load_structure_table
    from surrogates.crystal_graph import GraphCache, GraphStore
    from surrogates.featurizers import featurize_formulas

    bad = [s for s in strategies if s not in STRUCTURE_STRATEGIES]
    if bad:
        raise LoopError(
            f"unknown strategies {bad}", f"choose from {', '.join(STRUCTURE_STRATEGIES)}"
        )
    if direction not in ("minimize", "maximize"):
        raise LoopError(f"--direction {direction!r}", "use minimize or maximize")
    t0 = time.perf_counter()
    structures, y = load_structure_table(paths, cif=cif, target=target, limit=limit)
    n = len(y)
    graphs = GraphStore(GraphCache().graphs(structures))
    idx_X = torch.arange(n, dtype=torch.double).unsqueeze(-1)
    comp_X = featurize_formulas([s.composition.formula.replace(" ", "") for s in structures])
    load_s = time.perf_counter() - t0
    k = max(1, math.ceil(top * n))
    ranked = np.argsort(y if direction == "minimize" else -y, kind="stable")
    targets = {int(i) for i in ranked[:k]}
    if need > k:
        raise LoopError(f"--need {need} is more than the {k} top structures", "lower --need")
    if n_initial >= max_experiments:
        raise LoopError("--initial must be below --max-experiments", "raise --max-experiments")
    opts = {
        "cgcnn-ensemble": {"members": 5},
        "cgcnn-mcdropout": {},
        "elemnet-ensemble": {"members": 5},
        **(options or {}),
    }
    warm0: dict[str, Any] = {}
    pretrain_info: dict[str, Any] = {}
    if pretrain:
        warm0, pretrain_info = _pretrain(
            pretrain, cif, target, direction, strategies, opts, pretrain_budget
        )
    runs: list[dict[str, Any]] = []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 2718])
        initial = [int(i) for i in rng.choice(n, size=n_initial, replace=False)]
        for strategy in strategies:
            t = time.perf_counter()
            order = list(initial)
            extra: dict[str, Any] = {}
            if strategy == "random":
                rest = [int(i) for i in rng.permutation(n) if int(i) not in set(initial)]
                for i in rest:
                    if _found(order, targets) >= need or len(order) >= max_experiments:
                        break
                    order.append(i)
            else:
                pool_X = idx_X if strategy.startswith("cgcnn") else comp_X
                extra = _run_model(
                    strategy,
                    dict(opts.get(strategy, {})),
                    pool_X,
                    graphs,
                    y,
                    direction,
                    acquisition,
                    order,
                    targets,
                    need,
                    max_experiments,
                    batch,
                    seed,
                    warm0.get(strategy),
                )
            k_exp = _experiments_to(order, targets, need)
            run = {
                "strategy": strategy,
                "seed": seed,
                "experiments": k_exp,
                "measured": len(order),
                "best": float(y[order].min() if direction == "minimize" else y[order].max()),
                "seconds": round(time.perf_counter() - t, 2),
                "rounds": len(extra.get("round_seconds", [])),
                "first_fit_warm": extra.get("first_fit_warm"),
                "trace": order,
            }
            runs.append(run)
            if progress is not None:
                progress(run)
    summary = {}
    for strategy in strategies:
        rs = [r for r in runs if r["strategy"] == strategy]
        counts = [r["experiments"] if r["experiments"] is not None else max_experiments for r in rs]
        summary[strategy] = {
            "mean_experiments": float(np.mean(counts)),
            "median_experiments": float(np.median(counts)),
            "std_experiments": float(np.std(counts)),
            "misses": sum(1 for r in rs if r["experiments"] is None),
            "seeds": len(rs),
            "mean_seconds": float(np.mean([r["seconds"] for r in rs])),
        }
    return {
        "data": [str(p) for p in paths],
        "target": target,
        "direction": direction,
        "pool": n,
        "top_fraction": top,
        "top_structures": k,
        "need": need,
        "batch": batch,
        "initial": n_initial,
        "max_experiments": max_experiments,
        "acquisition": acquisition,
        "options": opts,
        "load_seconds": round(load_s, 1),
        "pretrained": pretrain_info,
        "summary": summary,
        "runs": runs,
    }


def structure_loop_markdown(res: dict[str, Any], command: str) -> str:
    """The summary table and settings as Markdown."""
    pre = res.get("pretrained") or {}
    lines = [
        f"`{command}`",
        "",
        *(
            [
                f"every network pretrained on {pre['rows']} structures of {pre['data']} "
                f"({pre['budget_s']:g} s each) before each seed",
                "",
            ]
            if pre
            else []
        ),
        f"{res['pool']} structures, {res['target']} ({res['direction']}); target: {res['need']} "
        f"of the top {res['top_structures']} ({res['top_fraction']:.0%}); {res['initial']} "
        f"random initial structures shared by every planner, batches of {res['batch']}, "
        f"{res['acquisition']}, at most {res['max_experiments']} experiments",
        "",
        "| planner | mean experiments | median | std | misses | seeds | s per run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in res["summary"].items():
        lines.append(
            f"| {name} | {s['mean_experiments']:.1f} | {s['median_experiments']:.0f} | "
            f"{s['std_experiments']:.1f} | {s['misses']} | {s['seeds']} | "
            f"{s['mean_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_structure_loop(res: dict[str, Any], path: Path) -> None:
    """Share of seeds that have found their target, against experiments, one line per planner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.arange(res["max_experiments"] + 1)
    for name in res["summary"]:
        rs = [r for r in res["runs"] if r["strategy"] == name]
        done = np.array([r["experiments"] if r["experiments"] is not None else np.inf for r in rs])
        ax.step(grid, [(done <= g).mean() for g in grid], where="post", label=name)
    ax.set_xlabel("experiments (initial ones included)")
    ax.set_ylabel(f"share of seeds with {res['need']} top-{res['top_fraction']:.0%} found")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
