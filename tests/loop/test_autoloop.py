"""`loop run --via worker`: the autonomous loop stops at its budget or target and resumes."""

from __future__ import annotations

import time
from pathlib import Path

from db import Store, crud
from loop.adapters import WorkerBridge
from loop.autoloop import run_campaign
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.jobs import claim_job

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


def test_run_stops_at_target(store: Store) -> None:
    _p3ht(store)
    bridge = WorkerBridge(store, "p3ht")
    s = run_campaign(store, "p3ht", bridge, budget=40, target=0.0, batch=2)
    assert s.finished == 2 and "target" in s.reason
