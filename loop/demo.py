"""`loop demo`: a short closed loop on the shipped P3HT data, the data set as the oracle."""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from db import Store, crud
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.ingest import ingest_rows
from loop.simulators import DatasetSimulator, make_simulator
from loop.spec import parse_spec

__all__ = ["run_demo", "oracle_round"]


def oracle_round(
    store: Store,
    name: str,
    sim: DatasetSimulator,
    rng: np.random.Generator,
    *,
    n: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Propose a batch, measure it with the oracle and ingest the results (two transactions)."""
    with store.session_scope() as session:
        res = propose(session=session, name=name, n=n, seed=seed, artifact_dir=store.artifact_dir)
    rows = []
    for i, p in enumerate(res.proposals):
        values = sim.measure(p.params, rng)
        rows.append((i + 1, {"proposal_id": p.id, **values, "source": "oracle"}))
    with store.session_scope() as session:
        ingest_rows(session=session, name=name, rows=rows, source=f"oracle batch {res.batch}")
    return [
        {
            "proposal": p.id,
            "params": p.params,
            "values": r[1],
            "strategy": p.strategy,
            "predictions": p.predictions,
        }
        for p, r in zip(res.proposals, rows)
    ]


def run_demo(
    store: Store,
    *,
    name: str = "demo-p3ht",
    rounds: int = 6,
    batch: int = 4,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Create the demo campaign and run the initial design plus `rounds` model-based batches."""
    spec_file = resources.files("loop") / "data" / "p3ht.toml"
    with resources.as_file(spec_file) as path:
        with store.session_scope() as session:
            target, k = name, 1
            while crud.campaign_exists(session=session, name=target):
                k += 1
                target = f"{name}-{k}"
            rec = create_campaign(session=session, path=path, name=target)
    spec = parse_spec(rec.spec)
    sim = make_simulator(spec)
    assert isinstance(sim, DatasetSimulator)
    obj = spec.objectives[0]
    top = sim.top_fraction_keys(0.05)
    echo(
        f"campaign '{target}': {len(sim)} candidate blends, maximize {obj.name} "
        f"({obj.unit}); top 5% = {len(top)} blends, best {sim.best()[1]:.4g}"
    )
    rng = np.random.default_rng(seed)
    found: set[Any] = set()
    n_exp = 0
    best = -math.inf
    total_rounds = math.ceil(spec.n_initial() / batch) + rounds
    for r in range(1, total_rounds + 1):
        done = oracle_round(store, target, sim, rng, n=batch, seed=seed)
        for d in done:
            n_exp += 1
            v = d["values"][obj.name]
            best = max(best, v)
            if sim.key(d["params"]) in top:
                found.add(sim.key(d["params"]))
        vals = ", ".join(f"{d['values'][obj.name]:.4g}" for d in done)
        echo(
            f"round {r:2d} ({done[0]['strategy']:>10}): measured {vals}; best so far "
            f"{best:.4g}; top-5% found {len(found)}/{len(top)}"
        )
    random_share = n_exp / len(sim)
    share = len(found) / len(top)
    echo(
        f"after {n_exp} experiments: found {len(found)} of the {len(top)} top-5% blends "
        f"({share:.0%}); random search expects {random_share:.0%} "
        f"(enhancement {share / random_share:.1f}x). Store: {store.url}"
    )
    return {
        "campaign": target,
        "experiments": n_exp,
        "found": len(found),
        "top": len(top),
        "share": share,
        "random_share": random_share,
        "best": best,
    }
