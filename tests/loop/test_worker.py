"""Queue workers: many processes drain one campaign; killed workers lose and duplicate nothing."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from db import Store, crud, open_store
from loop.campaigns import create_campaign, update_campaign
from loop.engine import propose
from loop.errors import ConflictError, IngestError, LoopError
from loop.jobs import claim_job, complete_job, heartbeat_job
from loop.worker import run_worker

ROOT = Path(__file__).resolve().parents[2]
CTX = mp.get_context("fork")


def queue_of(store: Store, tmp_path: Path, jobs: int, name: str = "crossed_barrel") -> str:
    """The crossed-barrel campaign (600 designs, data-set oracle) with `jobs` open proposals."""
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "crossed_barrel.toml", name=name)
        update_campaign(
            session=session, name=name, changes={"budget": jobs, "initial_design": jobs}
        )
    with store.session_scope() as session:
        res = propose(session=session, name=name, n=jobs, artifact_dir=tmp_path / "art")
    assert len(res.proposals) == jobs
    return name


def _worker_main(url: str, art: str, name: str, wid: str, lease: float, hold: float) -> None:
    store = open_store(url, artifact_dir=art)
    run_worker(
        store,
        name,
        simulator="dataset",
        worker_id=wid,
        lease_seconds=lease,
        heartbeat_seconds=lease / 4,
        min_seconds=hold,
    )
    store.dispose()


def assert_exactly_once(store: Store, name: str, jobs: int) -> None:
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        props = crud.list_proposals(session=session, campaign_id=rec.id)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
        events = crud.list_events(session=session, campaign_id=rec.id)
    assert len(props) == jobs
    assert Counter(p.status for p in props) == {"completed": jobs}
    per_proposal = Counter(m.proposal_id for m in ms)
    assert len(ms) == jobs and set(per_proposal) == {p.id for p in props}
    assert max(per_proposal.values()) == 1
    done = [e for e in events if e.kind == "job_completed"]
    assert sorted(e.payload["proposal"] for e in done) == sorted(p.id for p in props)
    assert all(e.actor.startswith("worker:") for e in done)


def _drain(store: Store, tmp_path: Path, n_workers: int, jobs: int) -> None:
    name = queue_of(store, tmp_path, jobs)
    procs = [
        CTX.Process(
            target=_worker_main,
            args=(store.url, str(tmp_path / "art"), name, f"w{i}", 30.0, 0.0),
        )
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    assert_exactly_once(store, name, jobs)
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        events = crud.list_events(session=session, campaign_id=rec.id)
    workers = Counter(e.payload["worker"] for e in events if e.kind == "job_completed")
    assert len(workers) >= 2, f"one worker did everything: {workers}"
    # no lease expired, so no job was ever handed to two workers
    claims = Counter(e.payload["proposal"] for e in events if e.kind == "job_claimed")
    assert len(claims) == jobs and max(claims.values()) == 1


def test_eight_workers_drain_200_jobs_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url, artifact_dir=tmp_path / "art")
    try:
        _drain(store, tmp_path, 8, 200)
    finally:
        store.dispose()


def test_four_workers_drain_200_jobs_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url, artifact_dir=tmp_path / "art")
    try:
        _drain(store, tmp_path, 4, 200)
    finally:
        store.dispose()


def test_sigkilled_workers_lose_and_duplicate_nothing(store: Store, tmp_path: Path) -> None:
    jobs, lease = 40, 1.5
    name = queue_of(store, tmp_path, jobs)
    rnd = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 120
    procs: list = []
    while time.monotonic() < deadline and kills < 10:
        while len(procs) < 3:
            p = CTX.Process(
                target=_worker_main,
                args=(store.url, str(tmp_path / "art"), name, f"k{kills}-{len(procs)}", lease, 0.2),
            )
            p.start()
            procs.append(p)
        time.sleep(rnd.uniform(0.05, 0.6))
        victim = procs.pop(rnd.randrange(len(procs)))
        victim.kill()  # SIGKILL: no cleanup, no last heartbeat
        victim.join()
        kills += 1
    for p in procs:
        p.kill()
        p.join()
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        running = crud.list_proposals(session=session, campaign_id=rec.id, statuses=["running"])
    assert running, "no kill landed while a job was running; the test proves nothing"
    # a fresh worker finds the orphaned jobs once their leases expire, and finishes the queue
    time.sleep(lease + 0.5)
    stats = run_worker(store, name, worker_id="rescuer", lease_seconds=lease)
    assert stats.claimed >= len(running)
    assert_exactly_once(store, name, jobs)
    with store.session_scope() as session:
        events = crud.list_events(session=session, campaign_id=rec.id)
    taken = [e for e in events if e.kind == "job_claimed" and "lease_expired_for" in e.payload]
    assert len(taken) >= len(running)


def test_lease_protocol(store: Store, tmp_path: Path) -> None:
    name = queue_of(store, tmp_path, 2)
    with store.session_scope() as session:
        a = claim_job(session=session, name=name, worker="a", lease_seconds=1)
        b = claim_job(session=session, name=name, worker="b", lease_seconds=60)
        assert claim_job(session=session, name=name, worker="c", lease_seconds=60) is None
    assert a is not None and b is not None and a.proposal.id != b.proposal.id
    time.sleep(1.2)
    with store.session_scope() as session:
        c = claim_job(session=session, name=name, worker="c", lease_seconds=60)
    assert c is not None and c.proposal.id == a.proposal.id and c.took_over_from == "a"
    assert c.proposal.attempts == 2
    with store.session_scope() as session, pytest.raises(ConflictError, match="does not hold"):
        heartbeat_job(session=session, name=name, proposal_id=a.proposal.id, worker="a")
    with store.session_scope() as session:
        heartbeat_job(session=session, name=name, proposal_id=b.proposal.id, worker="b")
    pid = a.proposal.id
    with store.session_scope() as session:
        first = complete_job(
            session=session, name=name, proposal_id=pid, values={"toughness": 1.5}, worker="c"
        )
    assert first.stored == 1
    # the slow worker comes back: the same values are acknowledged, other values refused
    with store.session_scope() as session:
        again = complete_job(
            session=session, name=name, proposal_id=pid, values={"toughness": 1.5}, worker="a"
        )
    assert again.stored == 0 and again.already == 1
    with store.session_scope() as session, pytest.raises(ConflictError, match="already has"):
        complete_job(
            session=session, name=name, proposal_id=pid, values={"toughness": 2.0}, worker="a"
        )
    # bad values are refused like a bad ingest row, and nothing is stored
    with store.session_scope() as session, pytest.raises(IngestError, match="toughness"):
        complete_job(
            session=session, name=name, proposal_id=b.proposal.id, values={"toughness": "x"}
        )
    with store.session_scope() as session, pytest.raises(LoopError, match="lease"):
        claim_job(session=session, name=name, worker="d", lease_seconds=0)
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        assert crud.count_measurements(session=session, campaign_id=rec.id) == 1


def test_a_simulator_error_fails_the_job_not_the_worker(store: Store, tmp_path: Path) -> None:
    (tmp_path / "pool.csv").write_text("x,y\n0,0\n1,0\n0,1\n1,1\n")
    (tmp_path / "sim.csv").write_text("x,y,f\n0,0,1.0\n1,0,2.0\n0,1,3.0\n")  # no (1, 1)
    spec = tmp_path / "gap.toml"
    spec.write_text(
        'name = "gap"\nbudget = 4\ninitial_design = 4\n'
        '[pool]\npath = "pool.csv"\ncolumns = ["x", "y"]\n'
        '[[objectives]]\nname = "f"\ndirection = "maximize"\n'
        '[simulator]\nname = "dataset"\n'
        '[simulator.options]\npath = "sim.csv"\ninputs = ["x", "y"]\noutputs = ["f"]\n'
    )
    with store.session_scope() as session:
        create_campaign(session=session, path=spec)
    with store.session_scope() as session:
        propose(session=session, name="gap", n=4, artifact_dir=tmp_path / "art")
    stats = run_worker(store, "gap", worker_id="w")
    assert (stats.claimed, stats.completed, stats.failed) == (4, 3, 1)
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="gap")
        failed = crud.list_proposals(session=session, campaign_id=rec.id, statuses=["failed"])
    assert failed[0].params == {"x": 1.0, "y": 1.0} and "LoopError" in failed[0].reason
    # only the worker holding a job may fail it
    from loop.jobs import fail_job

    with store.session_scope() as session, pytest.raises(ConflictError, match="does not hold"):
        fail_job(session=session, name="gap", proposal_id=failed[0].id, worker="w", reason="x")


def test_a_result_the_campaign_refuses_fails_the_job(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulator answering NaN: the job fails with the reason, the worker goes on."""
    import loop.worker as worker_module

    name = queue_of(store, tmp_path, 2)
    real = worker_module.campaign_simulator

    def nan_simulator(*args, **kwargs):  # type: ignore[no-untyped-def]
        sim = real(*args, **kwargs)
        sim.measure = lambda params, rng: {"toughness": float("nan")}  # type: ignore[method-assign]
        return sim

    monkeypatch.setattr(worker_module, "campaign_simulator", nan_simulator)
    stats = run_worker(store, name, worker_id="w")
    assert (stats.claimed, stats.completed, stats.failed) == (2, 0, 2)
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        props = crud.list_proposals(session=session, campaign_id=rec.id)
    assert {p.status for p in props} == {"failed"}
    assert all("result refused" in p.reason and "toughness" in p.reason for p in props)


def test_failing_a_job_holds_it_against_a_takeover(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: while worker A fails its (expired) job, worker B's claim cannot take it."""
    import loop.proposals as proposals_module
    from loop.jobs import fail_job

    store = open_store(pg_url, artifact_dir=tmp_path / "art")
    try:
        name = queue_of(store, tmp_path, 1)
        with store.session_scope() as session:
            a = claim_job(session=session, name=name, worker="A", lease_seconds=1)
        assert a is not None
        time.sleep(1.1)  # A's lease has run out, but A is alive and about to fail the job
        real = proposals_module.mark_proposal
        seen: list[object] = []

        def claim_meanwhile(**kwargs):  # type: ignore[no-untyped-def]
            with store.session_scope() as other:
                seen.append(claim_job(session=other, name=name, worker="B", lease_seconds=60))
            return real(**kwargs)

        monkeypatch.setattr(proposals_module, "mark_proposal", claim_meanwhile)
        with store.session_scope() as session:
            out = fail_job(
                session=session, name=name, proposal_id=a.proposal.id, worker="A", reason="x"
            )
        assert out.status == "failed" and seen == [None]
    finally:
        store.dispose()
