"""Data access functions of `db.crud` on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import ModelFitRecord, NewMeasurement, NewProposal, Store, crud
from loop.errors import NotFoundError


def _campaign(store: Store, name: str = "c1", spec: dict[str, Any] | None = None) -> int:
    with store.session_scope() as session:
        return crud.create_campaign(session=session, name=name, spec=spec or {"budget": 5}).id


def _proposals(store: Store, cid: int, n: int, batch: int = 1) -> list[int]:
    with store.session_scope() as session:
        out = crud.add_proposals(
            session=session,
            campaign_id=cid,
            batch=batch,
            items=[
                NewProposal(params={"x": float(i)}, strategy="sobol", candidate_idx=i)
                for i in range(n)
            ],
        )
        return [p.id for p in out]


def _m(key: str, x: float = 0.5, y: float = 1.0, proposal_id: int | None = None) -> NewMeasurement:
    return NewMeasurement(
        params={"x": x}, values={"y": y}, idempotency_key=key, proposal_id=proposal_id
    )


# -- campaigns ----------------------------------------------------------------------------------


def test_create_get_and_list_campaigns(store: Store) -> None:
    a = _campaign(store, "alpha", {"budget": 3, "nested": {"k": [1, 2.5, "s"]}})
    b = _campaign(store, "beta")
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="alpha")
        assert rec.id == a
        assert rec.spec == {"budget": 3, "nested": {"k": [1, 2.5, "s"]}}
        assert rec.spec_version == 1
        assert rec.status == "active"
        assert rec.created_at is not None
        assert [c.name for c in crud.list_campaigns(session=session)] == ["alpha", "beta"]
        assert [c.id for c in crud.list_campaigns(session=session)] == [a, b]
        assert crud.campaign_exists(session=session, name="beta")
        assert not crud.campaign_exists(session=session, name="gamma")
        assert crud.find_campaign(session=session, name="gamma") is None


def test_get_campaign_not_found_names_known_campaigns(store: Store) -> None:
    with store.session_scope() as session:
        with pytest.raises(NotFoundError) as err:
            crud.get_campaign(session=session, name="nope")
    assert "no campaign named 'nope'" in err.value.message
    assert "loop campaign create" in err.value.hint

    _campaign(store, "zeta")
    _campaign(store, "alpha")
    with store.session_scope() as session:
        with pytest.raises(NotFoundError) as err:
            crud.get_campaign(session=session, name="nope")
    assert err.value.hint == "known campaigns: alpha, zeta"
    assert "known campaigns: alpha, zeta" in str(err.value)


def test_campaign_name_is_unique_in_the_database(store: Store) -> None:
    _campaign(store, "dup")
    with pytest.raises(IntegrityError):
        with store.session_scope() as session:
            crud.create_campaign(session=session, name="dup", spec={"other": True})
    with store.session_scope() as session:
        camps = crud.list_campaigns(session=session)
        assert [(c.name, c.spec) for c in camps] == [("dup", {"budget": 5})]


def test_set_campaign_status(store: Store) -> None:
    cid = _campaign(store)
    with store.session_scope() as session:
        crud.set_campaign_status(session=session, campaign_id=cid, status="completed")
    with store.session_scope() as session:
        assert crud.get_campaign(session=session, name="c1").status == "completed"


def test_spec_versions_and_history(store: Store) -> None:
    cid = _campaign(store, "c1", {"budget": 5})
    with store.session_scope() as session:
        rec = crud.update_campaign_spec(
            session=session, campaign_id=cid, spec={"budget": 8}, note="budget=8"
        )
        assert rec.spec_version == 2
        assert rec.spec == {"budget": 8}
    with store.session_scope() as session:
        crud.update_campaign_spec(
            session=session, campaign_id=cid, spec={"budget": 9}, note="budget=9"
        )
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="c1")
        assert (rec.spec_version, rec.spec) == (3, {"budget": 9})
        hist = crud.spec_history(session=session, campaign_id=cid)
    assert [(h["version"], h["spec"], h["note"]) for h in hist] == [
        (1, {"budget": 5}, "created"),
        (2, {"budget": 8}, "budget=8"),
        (3, {"budget": 9}, "budget=9"),
    ]


def test_spec_version_is_unique_per_campaign(store: Store) -> None:
    from db.models import CampaignSpecVersion

    cid = _campaign(store)
    with pytest.raises(IntegrityError):
        with store.session_scope() as session:
            session.add(CampaignSpecVersion(campaign_id=cid, version=1, spec={}, note="again"))
    with store.session_scope() as session:
        assert len(crud.spec_history(session=session, campaign_id=cid)) == 1


# -- candidates ---------------------------------------------------------------------------------


def test_candidates_round_trip(store: Store) -> None:
    cid = _campaign(store)
    other = _campaign(store, "c2")
    rows = [
        ("a", {"x": 0.1, "cat": "red"}),
        (None, {"x": 2.0, "cat": "blue"}),
        ("c", {"x": -3.5, "cat": "red"}),
    ]
    with store.session_scope() as session:
        assert crud.add_candidates(session=session, campaign_id=cid, rows=rows) == 3
        crud.add_candidates(session=session, campaign_id=other, rows=[("z", {"x": 9.0})])
    with store.session_scope() as session:
        got = crud.list_candidates(session=session, campaign_id=cid)
        assert got == [(i, k, p) for i, (k, p) in enumerate(rows)]
        assert crud.count_candidates(session=session, campaign_id=cid) == 3
        assert crud.count_candidates(session=session, campaign_id=other) == 1


def test_candidate_index_is_unique_per_campaign(store: Store) -> None:
    cid = _campaign(store)
    with store.session_scope() as session:
        crud.add_candidates(session=session, campaign_id=cid, rows=[(None, {"x": 1.0})])
    with pytest.raises(IntegrityError):
        with store.session_scope() as session:
            # a second pool would restart at idx 0
            crud.add_candidates(session=session, campaign_id=cid, rows=[(None, {"x": 2.0})])
    with store.session_scope() as session:
        assert crud.list_candidates(session=session, campaign_id=cid) == [(0, None, {"x": 1.0})]


# -- proposals ----------------------------------------------------------------------------------


def test_proposals_add_list_and_status(store: Store) -> None:
    cid = _campaign(store)
    with store.session_scope() as session:
        assert crud.next_batch(session=session, campaign_id=cid) == 1
        out = crud.add_proposals(
            session=session,
            campaign_id=cid,
            batch=1,
            items=[
                NewProposal(
                    params={"x": 0.25},
                    strategy="gp+qlognei",
                    candidate_idx=4,
                    predictions={"y": {"mean": 1.5, "std": 0.25}},
                    acq_value=0.75,
                ),
                NewProposal(params={"x": 0.5}, strategy="gp+qlognei"),
            ],
        )
    ids = [p.id for p in out]
    assert out[0].status == "proposed" and out[0].reason == ""
    _proposals(store, cid, 1, batch=2)
    with store.session_scope() as session:
        assert crud.next_batch(session=session, campaign_id=cid) == 3
        p = crud.get_proposal(session=session, proposal_id=ids[0])
        assert p is not None
        assert (p.batch, p.candidate_idx, p.params) == (1, 4, {"x": 0.25})
        assert p.predictions == {"y": {"mean": 1.5, "std": 0.25}}
        assert p.acq_value == pytest.approx(0.75)
        assert p.strategy == "gp+qlognei"
        second = crud.get_proposal(session=session, proposal_id=ids[1])
        assert second is not None
        assert (second.candidate_idx, second.predictions, second.acq_value) == (None, {}, None)
        assert crud.get_proposal(session=session, proposal_id=10_000) is None

        done = crud.set_proposal_status(
            session=session, proposal_id=ids[1], status="failed", reason="sample cracked"
        )
        assert (done.status, done.reason) == ("failed", "sample cracked")
    with store.session_scope() as session:
        all_ = crud.list_proposals(session=session, campaign_id=cid)
        assert [p.status for p in all_] == ["proposed", "failed", "proposed"]
        failed = crud.list_proposals(session=session, campaign_id=cid, statuses=["failed"])
        assert [p.id for p in failed] == [ids[1]]
        assert failed[0].reason == "sample cracked"
        assert crud.count_proposals_by_status(session=session, campaign_id=cid) == {
            "proposed": 2,
            "failed": 1,
        }


def test_leaving_running_clears_the_lease(store: Store) -> None:
    from db.models import Proposal

    cid = _campaign(store)
    (pid,) = _proposals(store, cid, 1)
    with store.session_scope() as session:
        row = session.get_one(Proposal, pid)
        row.status, row.lease_owner = "running", "worker-1"
    with store.session_scope() as session:
        p = crud.set_proposal_status(session=session, proposal_id=pid, status="running")
        assert p.lease_owner == "worker-1"
        p = crud.set_proposal_status(session=session, proposal_id=pid, status="abandoned")
        assert p.lease_owner is None
    with store.session_scope() as session:
        got = crud.get_proposal(session=session, proposal_id=pid)
        assert got is not None and (got.status, got.lease_owner) == ("abandoned", None)


# -- measurements -------------------------------------------------------------------------------


def test_measurements_add_and_complete_proposals(store: Store) -> None:
    cid = _campaign(store)
    pids = _proposals(store, cid, 2)
    with store.session_scope() as session:
        out = crud.add_measurements(
            session=session,
            campaign_id=cid,
            items=[
                NewMeasurement(
                    params={"x": 0.0},
                    values={"y": 2.5},
                    stds={"y": 0.1},
                    idempotency_key=f"proposal:{pids[0]}",
                    proposal_id=pids[0],
                    candidate_idx=0,
                    source="simulation",
                    provenance={"operator": "ann", "line": 2},
                ),
                _m("row:abc:1", x=0.75, y=-1.0),
            ],
        )
        assert [m.idempotency_key for m in out] == [f"proposal:{pids[0]}", "row:abc:1"]
    with store.session_scope() as session:
        ms = crud.list_measurements(session=session, campaign_id=cid)
        assert len(ms) == 2
        first = ms[0]
        assert (first.proposal_id, first.candidate_idx, first.params) == (pids[0], 0, {"x": 0.0})
        assert (first.values, first.stds, first.source) == ({"y": 2.5}, {"y": 0.1}, "simulation")
        assert first.provenance == {"operator": "ann", "line": 2}
        assert ms[1].proposal_id is None and ms[1].stds == {}
        assert crud.count_measurements(session=session, campaign_id=cid) == 2
        statuses = [p.status for p in crud.list_proposals(session=session, campaign_id=cid)]
        assert statuses == ["completed", "proposed"]
        found = crud.measurements_by_key(
            session=session, campaign_id=cid, keys=["row:abc:1", "row:none:1", "row:abc:1"]
        )
        assert set(found) == {"row:abc:1"}
        assert found["row:abc:1"].values == {"y": -1.0}


def test_idempotency_key_is_unique_per_campaign(store: Store) -> None:
    cid = _campaign(store)
    other = _campaign(store, "c2")
    with store.session_scope() as session:
        crud.add_measurements(session=session, campaign_id=cid, items=[_m("id:m1")])
        # the same key in another campaign is fine
        crud.add_measurements(session=session, campaign_id=other, items=[_m("id:m1")])
    with store.session_scope() as session:
        assert crud.count_measurements(session=session, campaign_id=other) == 1


def test_duplicate_idempotency_key_rolls_back_the_whole_unit(store: Store) -> None:
    cid = _campaign(store)
    with store.session_scope() as session:
        crud.add_measurements(session=session, campaign_id=cid, items=[_m("id:m1", y=1.0)])
        crud.add_event(session=session, campaign_id=cid, kind="ingested")

    with pytest.raises(IntegrityError):
        with store.session_scope() as session:
            (p,) = crud.add_proposals(
                session=session,
                campaign_id=cid,
                batch=1,
                items=[NewProposal(params={"x": 0.1}, strategy="sobol")],
            )
            crud.add_event(session=session, campaign_id=cid, kind="proposed")
            crud.add_measurements(
                session=session,
                campaign_id=cid,
                items=[_m(f"proposal:{p.id}", proposal_id=p.id), _m("id:m1", y=99.0)],
            )

    with store.session_scope() as session:
        ms = crud.list_measurements(session=session, campaign_id=cid)
        assert [(m.idempotency_key, m.values) for m in ms] == [("id:m1", {"y": 1.0})]
        assert crud.list_proposals(session=session, campaign_id=cid) == []
        assert [e.kind for e in crud.list_events(session=session, campaign_id=cid)] == ["ingested"]


def test_duplicate_key_within_one_submission_is_rejected(store: Store) -> None:
    cid = _campaign(store)
    with pytest.raises(IntegrityError):
        with store.session_scope() as session:
            crud.add_measurements(
                session=session, campaign_id=cid, items=[_m("id:a"), _m("id:a", y=2.0)]
            )
    with store.session_scope() as session:
        assert crud.count_measurements(session=session, campaign_id=cid) == 0


# -- model fits ---------------------------------------------------------------------------------


def _fit(
    session: Session, cid: int | None, version: str, kind: str = "gp", path: str | None = "f.pt"
) -> ModelFitRecord:
    return crud.add_model_fit(
        session=session,
        campaign_id=cid,
        name=f"c/{kind}",
        kind=kind,
        settings={"kind": kind},
        data_version=version,
        metrics={"n_train": 3, "y": {"rmse": 0.5}},
        heldout=[{"measurement_id": 1, "mean": {"y": 0.1}}],
        checkpoint_path=path,
        checkpoint_sha256="ab" * 32 if path else None,
    )


def test_model_fits_latest_and_find_by_data_version(store: Store) -> None:
    cid = _campaign(store)
    with store.session_scope() as session:
        assert crud.latest_model_fit(session=session, campaign_id=cid) is None
        f1 = _fit(session, cid, "v1")
        f2 = _fit(session, cid, "v2")
        f3 = _fit(session, cid, "v2", kind="ensemble")
        _fit(session, None, "v2")  # a named, campaign-less fit
    with store.session_scope() as session:
        latest = crud.latest_model_fit(session=session, campaign_id=cid)
        assert latest is not None and latest.id == f3.id
        assert latest.metrics == {"n_train": 3, "y": {"rmse": 0.5}}
        assert latest.heldout == [{"measurement_id": 1, "mean": {"y": 0.1}}]
        assert latest.settings == {"kind": "ensemble"}
        found = crud.find_model_fit(session=session, campaign_id=cid, kind="gp", data_version="v2")
        assert found is not None and found.id == f2.id
        assert (
            crud.find_model_fit(session=session, campaign_id=cid, kind="gp", data_version="v3")
            is None
        )
        assert [f.id for f in crud.list_model_fits(session=session, campaign_id=cid)] == [
            f1.id,
            f2.id,
            f3.id,
        ]
        got = crud.get_model_fit(session=session, fit_id=f1.id)
        assert got is not None and got.data_version == "v1"
        assert [f.id for f in crud.fits_with_checkpoints(session=session, campaign_id=cid)] == [
            f3.id,
            f2.id,
            f1.id,
        ]
        crud.clear_checkpoint(session=session, fit_id=f2.id)
    with store.session_scope() as session:
        # a fit whose checkpoint is gone cannot be reused
        assert (
            crud.find_model_fit(session=session, campaign_id=cid, kind="gp", data_version="v2")
            is None
        )
        cleared = crud.get_model_fit(session=session, fit_id=f2.id)
        assert cleared is not None and cleared.checkpoint_path is None


# -- events -------------------------------------------------------------------------------------


def test_events_are_appended_in_order(store: Store) -> None:
    cid = _campaign(store)
    other = _campaign(store, "c2")
    kinds = ["campaign_created", "proposed", "ingested", "proposal_failed", "spec_updated"]
    with store.session_scope() as session:
        for i, k in enumerate(kinds[:3]):
            crud.add_event(session=session, campaign_id=cid, kind=k, payload={"i": i})
        crud.add_event(session=session, campaign_id=other, kind="elsewhere")
    with store.session_scope() as session:
        for i, k in enumerate(kinds[3:], start=3):
            crud.add_event(session=session, campaign_id=cid, kind=k, payload={"i": i})
        crud.add_event(session=session, campaign_id=None, kind="store_note")
    with store.session_scope() as session:
        events = crud.list_events(session=session, campaign_id=cid)
        assert [e.kind for e in events] == kinds
        assert [e.payload for e in events] == [{"i": i} for i in range(5)]
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert all(e.campaign_id == cid and e.created_at is not None for e in events)
        assert [e.kind for e in crud.list_events(session=session, campaign_id=other)] == [
            "elsewhere"
        ]
