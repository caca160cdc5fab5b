"""`loop benchmark design-loop`: a campaign whose simulator is the oracle, run by the planner and
by random sampling of the same design space, seed by seed, until an objective target is reached.

The planner arm runs the campaign exactly as `loop run NAME --via worker` does (propose, the
simulator measures each job, ingest, repeat) in a scratch SQLite store; each seed is its own
campaign name, which seeds both the proposals and the simulator's random draws. The random arm
samples the design space uniformly and asks the same simulator. Both stop at the target or at
`max_experiments`.

The planner is charged for every simulation of the batch in which the target was first reached
(a batch is run as a whole before the planner sees any of it); where in that batch the hit was
is kept too (`first_hit`), a lower bound.
"""

from __future__ import annotations

import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import LoopError

__all__ = ["run_design_loop", "design_loop_markdown", "paired_t_interval"]


def _reached(values: list[float], target: float, maximize: bool) -> int | None:
    for i, v in enumerate(values):
        if (v >= target) if maximize else (v <= target):
            return i + 1
    return None


def _planner_arm(spec_path: Path, seed: int, target: float, max_exp: int) -> dict[str, Any]:
    from db import crud, open_store
    from loop.adapters import make_bridge
    from loop.autoloop import run_campaign
    from loop.campaigns import create_campaign_from_spec, load_campaign_spec

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db", artifact_dir=Path(tmp) / "artifacts")
        name = f"design_seed{seed}"
        spec, _ = load_campaign_spec(spec_path)
        spec = spec.model_copy(update={"budget": max_exp})
        with store.session_scope() as session:
            create_campaign_from_spec(session=session, spec=spec, candidates=None, name=name)
        bridge = make_bridge("worker", store, name)
        t = time.perf_counter()
        try:
            run_campaign(store, name, bridge, budget=max_exp, target=target, poll_seconds=0.0)
        finally:
            bridge.close()
        secs = time.perf_counter() - t
        with store.session_scope() as session:
            rec = crud.get_campaign(session=session, name=name)
            ms = crud.list_measurements(session=session, campaign_id=rec.id)
            ms = sorted(ms, key=lambda m: m.id)
            batch_of = {
                p.id: p.batch for p in crud.list_proposals(session=session, campaign_id=rec.id)
            }
        store.engine.dispose()
    return {"ms": ms, "batches": [batch_of[m.proposal_id] for m in ms], "seconds": secs}


def _charged(batches: list[int], first_hit: int | None) -> int | None:
    """Simulations spent up to the end of the batch that holds the `first_hit`-th result."""
    if first_hit is None:
        return None
    hit_batch = batches[first_hit - 1]
    return sum(b <= hit_batch for b in batches)


def paired_t_interval(d: np.ndarray, level: float = 0.95) -> float | None:
    """Half width of the `level` t-interval of the mean of paired differences `d`."""
    from scipy import stats

    if len(d) < 2:
        return None
    q = float(stats.t.ppf(0.5 + level / 2, df=len(d) - 1))
    return q * float(d.std(ddof=1)) / float(np.sqrt(len(d)))


def run_design_loop(
    spec_path: Path,
    *,
    target: float,
    seeds: int = 10,
    max_experiments: int = 60,
    progress: Any = None,
) -> dict[str, Any]:
    """Experiments to reach `target` on the first objective: planner against random sampling.

    Raises:
        LoopError: The spec has no simulator or no continuous design space.
    """
    from loop.campaigns import load_campaign_spec
    from loop.simulators import make_simulator
    from loop.space import DesignSpace

    spec, pool = load_campaign_spec(spec_path)
    if spec.simulator is None:
        raise LoopError(
            f"{spec_path}: the campaign has no [simulator]", "add one; it is the oracle"
        )
    if pool is not None:
        raise LoopError(
            f"{spec_path}: the design loop samples a parameter space, not a pool",
            "use `loop benchmark campaign` for pools",
        )
    obj = spec.objectives[0]
    maximize = obj.direction == "maximize"
    say = progress or (lambda _m: None)
    runs: list[dict[str, Any]] = []
    sim = make_simulator(spec, spec_path.resolve().parent)
    space = DesignSpace(spec)
    for seed in range(seeds):
        res = _planner_arm(spec_path, seed, target, max_experiments)
        values = [float(m.values[obj.name]) for m in res["ms"] if obj.name in m.values]
        first = _reached(values, target, maximize)
        k = _charged(res["batches"], first)
        runs.append(
            {
                "seed": seed,
                "strategy": "planner",
                "experiments": k,
                "first_hit": first,
                "best": max(values) if maximize else min(values),
                "seconds": round(res["seconds"], 1),
                "values": values,
            }
        )
        say(f"seed {seed} planner: {k} experiments ({res['seconds']:.0f} s)")
        rng = np.random.default_rng([seed, zlib.crc32(b"random-arm")])
        values = []
        t = time.perf_counter()
        for _ in range(max_experiments):
            params = space.sobol(1, seed=int(rng.integers(2**31)))[0]
            values.append(float(sim.measure(params, rng)[obj.name]))
            if _reached(values[-1:], target, maximize):
                break
        k = _reached(values, target, maximize)
        runs.append(
            {
                "seed": seed,
                "strategy": "random",
                "experiments": k,
                "first_hit": k,
                "best": max(values) if maximize else min(values),
                "seconds": round(time.perf_counter() - t, 1),
                "values": values,
            }
        )
        say(f"seed {seed} random: {k} experiments")
    summary = {}
    for strat in ("planner", "random"):
        rs = [r for r in runs if r["strategy"] == strat]
        # a seed that never reached the target counts as max_experiments (a lower bound)
        ks = np.array([r["experiments"] or max_experiments for r in rs], dtype=float)
        summary[strat] = {
            "mean": float(ks.mean()),
            "median": float(np.median(ks)),
            "std": float(ks.std(ddof=1)) if len(ks) > 1 else 0.0,
            "misses": sum(r["experiments"] is None for r in rs),
            "seconds_per_run": float(np.mean([r["seconds"] for r in rs])),
        }
    p = np.array([r["experiments"] or max_experiments for r in runs if r["strategy"] == "planner"])
    q = np.array([r["experiments"] or max_experiments for r in runs if r["strategy"] == "random"])
    d = q - p
    half = paired_t_interval(d)
    return {
        "spec": str(spec_path),
        "objective": obj.name,
        "direction": obj.direction,
        "target": target,
        "seeds": seeds,
        "max_experiments": max_experiments,
        "batch_size": spec.batch_size,
        "initial_design": spec.n_initial(),
        "surrogate": spec.model.surrogate,
        "acquisition": spec.model.acquisition,
        "summary": summary,
        "paired_difference": {
            "mean": float(d.mean()),
            "t95_half_width": half,
            "planner_wins": int((d > 0).sum()),
            "ties": int((d == 0).sum()),
            "random_wins": int((d < 0).sum()),
        },
        "runs": runs,
    }


def design_loop_markdown(doc: dict[str, Any], command: str) -> str:
    lines = [
        f"`{command}`",
        "",
        f"{doc['objective']} ({doc['direction']}) to reach {doc['target']:g}; planner "
        f"{doc['surrogate']} + {doc['acquisition']}, batches of {doc['batch_size']} after "
        f"{doc['initial_design']} initial points, against uniform random sampling; at most "
        f"{doc['max_experiments']} simulations, {doc['seeds']} seeds (a miss counts as the "
        "maximum)",
        "",
        "| strategy | mean simulations | median | std | misses | s per run |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k, s in doc["summary"].items():
        lines.append(
            f"| {k} | {s['mean']:.1f} | {s['median']:g} | {s['std']:.1f} | {s['misses']} | "
            f"{s['seconds_per_run']:.0f} |"
        )
    per = {k: [r["experiments"] for r in doc["runs"] if r["strategy"] == k] for k in doc["summary"]}
    lines += ["", "Per seed: " + "; ".join(f"{k} {v}" for k, v in per.items())]
    firsts = [r["first_hit"] for r in doc["runs"] if r["strategy"] == "planner"]
    lines.append(f"Planner, where in the charged batch the target was first hit: {firsts}")
    pd = doc["paired_difference"]
    if pd["t95_half_width"] is not None:
        lines.append(
            f"Random minus planner, paired: {pd['mean']:.1f} +- {pd['t95_half_width']:.1f}"
            f" (95% t-interval); planner fewer on {pd['planner_wins']} seeds, tied on "
            f"{pd['ties']}, more on {pd['random_wins']}"
        )
    return "\n".join(lines) + "\n"
