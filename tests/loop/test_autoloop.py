"""`loop run --via worker`: the autonomous loop stops at its budget or target and resumes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from db import Store, crud
from loop.adapters import WorkerBridge
from loop.autoloop import run_campaign
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.jobs import claim_job
from loop.simulators import make_simulator
from loop.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]


def _p3ht(store: Store) -> None:
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")


def test_run_stops_at_budget_and_resumes_after_a_crash(store: Store, tmp_path: Path) -> None:
    _p3ht(store)
    # a previous run crashed: one batch proposed, one job held by a worker that died
    with store.session_scope() as session:
        propose(session=session, name="p3ht", n=4, artifact_dir=store.artifact_dir)
        dead = claim_job(session=session, name="p3ht", worker="dead", lease_seconds=1)
    assert dead is not None
    time.sleep(1.1)
    bridge = WorkerBridge(store, "p3ht", lease_seconds=5)
    s = run_campaign(store, "p3ht", bridge, budget=10, batch=3, poll_seconds=0.2, timeout=300)
    assert s.finished == 10 and s.measurements == 10
    assert "budget 10" in s.reason
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        props = crud.list_proposals(session=session, campaign_id=rec.id)
    # the crashed batch was finished first, then batches of 3 (the last cut to the budget)
    assert [p.batch for p in props][:4] == [1, 1, 1, 1]
    assert len(props) == 10 and {p.status for p in props} == {"completed"}
    taken = next(p for p in props if p.id == dead.proposal.id)
    assert taken.attempts == 2
    # run again with a larger budget: it goes on from 10
    s2 = run_campaign(store, "p3ht", bridge, budget=13, batch=3, poll_seconds=0.2)
    assert s2.finished == 13 and s2.batches_proposed == 1


def test_run_stops_at_the_batch_that_reaches_the_target(store: Store) -> None:
    """The target lies above everything the first batch found: the loop goes on until a batch
    beats it, stops right there, well inside the budget, and says why."""
    _p3ht(store)
    bridge = WorkerBridge(store, "p3ht")
    first = run_campaign(store, "p3ht", bridge, budget=2, batch=2)
    assert first.finished == 2 and first.best is not None
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        sim = make_simulator(parse_spec(rec.spec))
        rng = np.random.default_rng(0)
        pool = [
            sim.measure(params, rng)["conductivity"]
            for _i, _k, params in crud.list_candidates(session=session, campaign_id=rec.id)
        ]
    # the next better value the pool holds: reachable, and not reached by the first batch
    goal = min(v for v in pool if v > first.best)
    s = run_campaign(store, "p3ht", bridge, budget=60, target=goal, batch=2)
    assert "target conductivity" in s.reason and s.best is not None and s.best >= goal
    assert 2 < s.finished < 60
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        props = {p.id: p.batch for p in crud.list_proposals(session=session, campaign_id=rec.id)}
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
    by_batch: dict[int, list[float]] = {}
    for m in ms:
        by_batch.setdefault(props[m.proposal_id], []).append(m.values["conductivity"])
    *before, last = sorted(by_batch)
    assert max(by_batch[last]) >= goal, "the last batch reached the target"
    assert all(max(by_batch[b]) < goal for b in before), "no earlier batch did"
    assert len(ms) == s.finished and set(props) == {m.proposal_id for m in ms}
