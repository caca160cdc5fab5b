"""Failing and abandoning proposals: what each does to later batches and to the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import Store, crud
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.errors import BudgetError, ConflictError, LoopError, NotFoundError
from loop.ingest import ingest_rows
from loop.proposals import list_campaign_proposals, mark_proposal

#: Six candidates on a 2-D grid.
POOL = "x,y\n0.0,0.0\n1.0,0.0\n0.0,1.0\n1.0,1.0\n0.5,0.5\n0.25,0.75\n"


def _tiny(store: Store, tmp_path: Path, *, budget: int = 20, initial: int = 6) -> str:
    """A pool campaign 'tiny' with the six candidates above."""
    (tmp_path / "pool.csv").write_text(POOL)
    spec = tmp_path / "tiny.toml"
    spec.write_text(
        'name = "tiny"\n'
        f"budget = {budget}\n"
        "batch_size = 2\n"
        f"initial_design = {initial}\n"
        "[pool]\n"
        'path = "pool.csv"\n'
        'columns = ["x", "y"]\n'
        "[[objectives]]\n"
        'name = "f"\n'
        'direction = "maximize"\n'
        "[model]\n"
        'surrogate = "gp"\n'
        'acquisition = "qlognei"\n'
    )
    with store.session_scope() as session:
        create_campaign(session=session, path=spec)
    return "tiny"


def _propose(store: Store, tmp_path: Path, n: int) -> list[tuple[int, int]]:
    """Propose `n`; returns `(proposal id, candidate idx)` pairs."""
    with store.session_scope() as session:
        res = propose(session=session, name="tiny", n=n, artifact_dir=tmp_path / "art")
    assert all(p.candidate_idx is not None for p in res.proposals)
    return [(p.id, p.candidate_idx) for p in res.proposals]  # type: ignore[misc]


def _mark(store: Store, pid: int, status: str, reason: str = "") -> None:
    with store.session_scope() as session:
        mark_proposal(session=session, proposal_id=pid, status=status, reason=reason)


def test_failed_candidate_is_not_proposed_again(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path)
    first = _propose(store, tmp_path, 5)
    assert len({idx for _, idx in first}) == 5
    failed_id, failed_idx = first[0]
    _mark(store, failed_id, "failed", "substrate cracked")
    for pid, _ in first[1:]:
        _mark(store, pid, "abandoned")
    # four abandoned candidates and the sixth are free again; the failed one is not
    second = _propose(store, tmp_path, 6)
    got = {idx for _, idx in second}
    assert failed_idx not in got
    assert got == set(range(6)) - {failed_idx}
    with store.session_scope() as session:
        p = crud.get_proposal(session=session, proposal_id=failed_id)
        assert p is not None and (p.status, p.reason) == ("failed", "substrate cracked")
        rec = crud.get_campaign(session=session, name="tiny")
        events = crud.list_events(session=session, campaign_id=rec.id)
    fails = [e for e in events if e.kind == "proposal_failed"]
    assert [e.payload for e in fails] == [{"proposal": failed_id, "reason": "substrate cracked"}]
    assert sum(e.kind == "proposal_abandoned" for e in events) == 4


def test_pool_of_pending_and_failed_candidates_is_exhausted(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path)
    batch = _propose(store, tmp_path, 6)
    _mark(store, batch[0][0], "failed")
    with store.session_scope() as session:
        with pytest.raises(BudgetError, match="measured, pending or failed"):
            propose(session=session, name="tiny", n=1, artifact_dir=tmp_path / "art")


def test_failed_proposal_stays_out_of_model_based_batches(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path, initial=2)
    seed = _propose(store, tmp_path, 2)
    with store.session_scope() as session:
        ingest_rows(
            session=session,
            name="tiny",
            rows=[
                (2, {"proposal_id": seed[0][0], "f": 1.0}),
                (3, {"proposal_id": seed[1][0], "f": 2.5}),
            ],
        )
    model = _propose(store, tmp_path, 2)
    with store.session_scope() as session:
        strategies = {p.strategy for p in list_campaign_proposals(session=session, name="tiny")}
    assert "gp+qlognei" in strategies
    _mark(store, model[0][0], "failed")
    rest = _propose(store, tmp_path, 6)
    # 6 candidates - 2 measured - 1 pending - 1 failed
    blocked = {idx for _, idx in seed + model}
    assert {idx for _, idx in rest} == set(range(6)) - blocked


def test_abandoning_frees_a_budget_slot_failing_does_not(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path, budget=3)
    batch = _propose(store, tmp_path, 3)
    _mark(store, batch[0][0], "failed")
    with store.session_scope() as session:
        with pytest.raises(BudgetError, match="spent its budget"):
            propose(session=session, name="tiny", n=1, artifact_dir=tmp_path / "art")
    _mark(store, batch[1][0], "abandoned")
    again = _propose(store, tmp_path, 2)  # cut to the one free slot
    assert len(again) == 1
    with store.session_scope() as session:
        with pytest.raises(BudgetError, match="spent its budget"):
            propose(session=session, name="tiny", n=1, artifact_dir=tmp_path / "art")


def test_running_proposal_can_be_abandoned(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path)
    ((pid, _),) = _propose(store, tmp_path, 1)
    with store.session_scope() as session:
        crud.set_proposal_status(session=session, proposal_id=pid, status="running")
    _mark(store, pid, "abandoned", "instrument down")
    with store.session_scope() as session:
        p = crud.get_proposal(session=session, proposal_id=pid)
    assert p is not None and (p.status, p.reason) == ("abandoned", "instrument down")


def test_failing_a_completed_proposal_is_a_conflict(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path)
    (pid, _), (other, _) = _propose(store, tmp_path, 2)
    with store.session_scope() as session:
        ingest_rows(session=session, name="tiny", rows=[(2, {"proposal_id": pid, "f": 3.0})])
    with store.session_scope() as session:
        with pytest.raises(ConflictError) as err:
            mark_proposal(session=session, proposal_id=pid, status="failed")
    assert f"proposal {pid} is completed" in err.value.message
    _mark(store, other, "abandoned")
    with store.session_scope() as session:
        with pytest.raises(ConflictError, match="is abandoned"):
            mark_proposal(session=session, proposal_id=other, status="failed")
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="tiny")
        statuses = [p.status for p in crud.list_proposals(session=session, campaign_id=rec.id)]
        events = [e.kind for e in crud.list_events(session=session, campaign_id=rec.id)]
    assert statuses == ["completed", "abandoned"]
    assert "proposal_failed" not in events


def test_unknown_proposal_and_bad_status(store: Store, tmp_path: Path) -> None:
    _tiny(store, tmp_path)
    ((pid, _),) = _propose(store, tmp_path, 1)
    with store.session_scope() as session:
        with pytest.raises(NotFoundError, match="no proposal with id 9999"):
            mark_proposal(session=session, proposal_id=9999, status="failed")
        for bad in ("completed", "proposed", "broken"):
            with pytest.raises(LoopError, match=f"cannot mark a proposal '{bad}'") as err:
                mark_proposal(session=session, proposal_id=pid, status=bad)
            assert not isinstance(err.value, (NotFoundError, ConflictError))
        with pytest.raises(LoopError, match="unknown status 'done'"):
            list_campaign_proposals(session=session, name="tiny", status="done")
    with store.session_scope() as session:
        p = crud.get_proposal(session=session, proposal_id=pid)
        assert p is not None and p.status == "proposed"
        listed = list_campaign_proposals(session=session, name="tiny", status="proposed")
        assert [q.id for q in listed] == [pid]
        assert list_campaign_proposals(session=session, name="tiny", status="failed") == []


LINE = "x\n" + "".join(f"{i / 20:.2f}\n" for i in range(21))


def _line(store: Store, tmp_path: Path, failed: str) -> None:
    (tmp_path / "line.csv").write_text(LINE)
    spec = tmp_path / f"line-{failed}.toml"
    spec.write_text(
        f'name = "line-{failed}"\nbudget = 30\nbatch_size = 1\ninitial_design = 2\n'
        '[pool]\npath = "line.csv"\ncolumns = ["x"]\n'
        '[[objectives]]\nname = "f"\ndirection = "maximize"\n'
        f'[model]\nsurrogate = "gp"\nacquisition = "qlognei"\nfailed = "{failed}"\n'
    )
    with store.session_scope() as session:
        create_campaign(session=session, path=spec)
    # measured: the two ends and the middle; the objective peaks at x = 0.75
    rows = [(i + 2, {"x": x, "f": -((x - 0.75) ** 2)}) for i, x in enumerate([0.0, 0.5, 1.0])]
    with store.session_scope() as session:
        ingest_rows(session=session, name=f"line-{failed}", rows=rows, source="t")


@pytest.mark.parametrize("failed", ["avoid", "exclude"])
def test_failed_experiments_are_avoided_or_only_excluded(
    store: Store, tmp_path: Path, failed: str
) -> None:
    _line(store, tmp_path, failed)
    name = f"line-{failed}"
    with store.session_scope() as session:
        first = propose(session=session, name=name, n=1, artifact_dir=tmp_path / "art")
    (p,) = first.proposals
    _mark(store, p.id, "failed", "furnace tripped")
    with store.session_scope() as session:
        second = propose(session=session, name=name, n=1, artifact_dir=tmp_path / "art")
    (r,) = second.proposals
    assert r.candidate_idx != p.candidate_idx
    gap = abs(r.params["x"] - p.params["x"])
    if failed == "exclude":
        assert gap <= 0.05 + 1e-9  # the failure says nothing about its neighbour
    else:
        assert gap > 0.05 + 1e-9  # a pending-like failure makes its neighbour less attractive


def test_every_status_change_is_an_event(store: Store, tmp_path: Path) -> None:
    """Propose, claim, complete, fail, abandon and a late result for the failed job: the audit
    log holds one event per change, naming the proposal, so the campaign can be replayed."""
    from loop.jobs import claim_job, complete_job, fail_job

    _tiny(store, tmp_path)
    ids = [pid for pid, _ in _propose(store, tmp_path, 4)]
    with store.session_scope(actor="w1") as session:
        a = claim_job(session=session, name="tiny", worker="w1")
        assert a is not None and a.proposal.id == ids[0]
        complete_job(session=session, name="tiny", proposal_id=ids[0], values={"f": 1.0})
    with store.session_scope(actor="w1") as session:
        b = claim_job(session=session, name="tiny", worker="w1")
        assert b is not None and b.proposal.id == ids[1]
        fail_job(session=session, name="tiny", proposal_id=ids[1], worker="w1", reason="crash")
    _mark(store, ids[2], "abandoned", "no sample")
    with store.session_scope(actor="lab") as session:
        # the failed job's result turns up after all: kept, and the event says it came late
        ingest_rows(
            session=session,
            name="tiny",
            rows=[(1, {"proposal_id": ids[1], "f": 0.5}), (2, {"proposal_id": ids[3], "f": 2})],
            source="late.csv",
        )
    with store.session_scope() as session:
        cid = crud.get_campaign(session=session, name="tiny").id
        events = crud.list_events(session=session, campaign_id=cid)
        status = {p.id: p.status for p in crud.list_proposals(session=session, campaign_id=cid)}
    assert status == dict.fromkeys([ids[0], ids[1], ids[3]], "completed") | {ids[2]: "abandoned"}
    changes: list[tuple[str, int]] = []
    for e in events:
        p = e.payload
        if e.kind == "proposed":
            changes += [("proposed", i) for i in p["ids"]]
        elif e.kind in ("job_claimed", "job_completed", "proposal_failed", "proposal_abandoned"):
            changes.append((e.kind, p["proposal"]))
        elif e.kind == "ingested":
            changes += [("ingested", i) for i in p["proposals"]]
    assert changes == [
        *[("proposed", i) for i in ids],
        ("job_claimed", ids[0]),
        ("ingested", ids[0]),
        ("job_completed", ids[0]),
        ("job_claimed", ids[1]),
        ("proposal_failed", ids[1]),
        ("proposal_abandoned", ids[2]),
        ("ingested", ids[1]),
        ("ingested", ids[3]),
    ]
    late = [e for e in events if e.kind == "ingested"][-1]
    assert late.payload["completed_after"] == {str(ids[1]): "failed"}
    assert late.actor == "lab" and late.payload["source"] == "late.csv"
    assert [e.actor for e in events if e.kind == "job_claimed"] == ["w1", "w1"]
