"""Whole-campaign bundles: one JSON document to move a campaign between stores.

A bundle holds the spec history, the pool, proposals, measurements, model-fit metadata (not the
checkpoint files) and the event log. Importing maps every id to the target store's ids and runs
in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db import NewMeasurement, NewProposal, crud
from db.models import Event, Measurement, ModelFit, Proposal
from loop.errors import ConflictError, LoopError
from loop.spec import parse_spec

__all__ = ["BUNDLE_FORMAT", "export_bundle", "import_bundle"]

BUNDLE_FORMAT = "loop-campaign-bundle/1"


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def export_bundle(*, session: Session, name: str) -> dict[str, Any]:
    """The whole campaign `name` as JSON-able data."""
    rec = crud.get_campaign(session=session, name=name)
    return {
        "format": BUNDLE_FORMAT,
        "campaign": {"name": rec.name, "status": rec.status, "created_at": _iso(rec.created_at)},
        "spec_history": [
            {**h, "created_at": _iso(h["created_at"])}
            for h in crud.spec_history(session=session, campaign_id=rec.id)
        ],
        "candidates": [
            {"idx": i, "key": k, "params": p}
            for i, k, p in crud.list_candidates(session=session, campaign_id=rec.id)
        ],
        "model_fits": [
            {
                "id": f.id,
                "name": f.name,
                "kind": f.kind,
                "settings": f.settings,
                "data_version": f.data_version,
                "metrics": f.metrics,
                "heldout": f.heldout,
                "checkpoint_sha256": f.checkpoint_sha256,
                "created_at": _iso(f.created_at),
            }
            for f in crud.list_model_fits(session=session, campaign_id=rec.id)
        ],
        "proposals": [
            {
                "id": p.id,
                "batch": p.batch,
                "candidate_idx": p.candidate_idx,
                "params": p.params,
                "status": p.status,
                "strategy": p.strategy,
                "predictions": p.predictions,
                "acq_value": p.acq_value,
                "model_fit_id": p.model_fit_id,
                "reason": p.reason,
                "created_at": _iso(p.created_at),
                "updated_at": _iso(p.updated_at),
            }
            for p in crud.list_proposals(session=session, campaign_id=rec.id)
        ],
        "measurements": [
            {
                "id": m.id,
                "proposal_id": m.proposal_id,
                "candidate_idx": m.candidate_idx,
                "params": m.params,
                "values": m.values,
                "stds": m.stds,
                "source": m.source,
                "provenance": m.provenance,
                "idempotency_key": m.idempotency_key,
                "measured_at": _iso(m.measured_at),
                "created_at": _iso(m.created_at),
            }
            for m in crud.list_measurements(session=session, campaign_id=rec.id)
        ],
        "events": [
            {"kind": e.kind, "payload": e.payload, "created_at": _iso(e.created_at)}
            for e in crud.list_events(session=session, campaign_id=rec.id)
        ],
    }


def import_bundle(
    *, session: Session, bundle: dict[str, Any], name: str | None = None, source: str = "bundle"
) -> str:
    """Recreate a campaign from a bundle (optionally under a new name); returns the name."""
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise LoopError(
            f"{source}: not a campaign bundle (format must be '{BUNDLE_FORMAT}')",
            "make one with `loop campaign export NAME -o bundle.json`",
        )
    try:
        history = bundle["spec_history"]
        camp = bundle["campaign"]
        target = name or camp["name"]
        if crud.campaign_exists(session=session, name=target):
            raise ConflictError(
                f"a campaign named '{target}' already exists in this store",
                "import it under another name with --name",
            )
        specs = []
        for h in history:
            raw = dict(h["spec"])
            raw["name"] = target
            specs.append(parse_spec(raw, f"{source}: spec version {h['version']}").to_json())
        rec = crud.create_campaign(
            session=session,
            name=target,
            spec=specs[0],
            note=history[0]["note"],
            status=camp["status"],
            created_at=_dt(camp["created_at"]),
        )
        for h, spec in zip(history[1:], specs[1:]):
            crud.update_campaign_spec(
                session=session, campaign_id=rec.id, spec=spec, note=h["note"]
            )
        crud.add_candidates(
            session=session,
            campaign_id=rec.id,
            rows=[(c["key"], c["params"]) for c in bundle["candidates"]],
        )
        fit_ids: dict[int, int] = {}
        meas_ids: dict[int, int] = {}
        for f in bundle["model_fits"]:
            new = crud.add_model_fit(
                session=session,
                campaign_id=rec.id,
                name=f["name"],
                kind=f["kind"],
                settings=f["settings"],
                data_version=f["data_version"],
                metrics=f["metrics"],
                heldout=f["heldout"],
                checkpoint_path=None,
                checkpoint_sha256=f["checkpoint_sha256"],
            )
            session.get_one(ModelFit, new.id).created_at = _dt(f["created_at"])  # type: ignore[assignment]
            fit_ids[f["id"]] = new.id
        prop_ids: dict[int, int] = {}
        for p in bundle["proposals"]:
            (new_p,) = crud.add_proposals(
                session=session,
                campaign_id=rec.id,
                batch=p["batch"],
                items=[
                    NewProposal(
                        params=p["params"],
                        strategy=p["strategy"],
                        candidate_idx=p["candidate_idx"],
                        predictions=p["predictions"],
                        acq_value=p["acq_value"],
                    )
                ],
                model_fit_id=fit_ids.get(p["model_fit_id"]) if p["model_fit_id"] else None,
            )
            row = session.get_one(Proposal, new_p.id)
            row.status, row.reason = p["status"], p["reason"]
            row.created_at = _dt(p["created_at"])  # type: ignore[assignment]
            prop_ids[p["id"]] = new_p.id
        session.flush()
        for m in bundle["measurements"]:
            (new_m,) = crud.add_measurements(
                session=session,
                campaign_id=rec.id,
                items=[
                    NewMeasurement(
                        params=m["params"],
                        values=m["values"],
                        stds=m["stds"],
                        idempotency_key=_remap_key(m["idempotency_key"], prop_ids),
                        proposal_id=prop_ids.get(m["proposal_id"]) if m["proposal_id"] else None,
                        candidate_idx=m["candidate_idx"],
                        source=m["source"],
                        provenance=m["provenance"],
                        measured_at=_dt(m["measured_at"]),
                    )
                ],
            )
            session.get_one(Measurement, new_m.id).created_at = _dt(m["created_at"])  # type: ignore[assignment]
            meas_ids[m["id"]] = new_m.id
        # held-out predictions name measurements by id, which change between stores
        for f in bundle["model_fits"]:
            row = session.get_one(ModelFit, fit_ids[f["id"]])
            row.heldout = [
                {
                    **h,
                    "measurement_id": meas_ids.get(
                        h.get("measurement_id"), h.get("measurement_id")
                    ),
                }
                for h in f["heldout"]
            ]
        # add_measurements marks proposals completed; restore the bundle's statuses
        for p in bundle["proposals"]:
            session.get_one(Proposal, prop_ids[p["id"]]).status = p["status"]
        for e in bundle["events"]:
            session.add(
                Event(
                    campaign_id=rec.id,
                    kind=e["kind"],
                    payload=e["payload"],
                    created_at=_dt(e["created_at"]),
                )
            )
        crud.add_event(
            session=session,
            campaign_id=rec.id,
            kind="imported",
            payload={"source": source, "from_name": camp["name"]},
        )
        session.flush()
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise LoopError(
            f"{source}: the bundle is incomplete or damaged ({err!r})",
            "export the campaign again with `loop campaign export`",
        ) from None
    return target


def _remap_key(key: str, prop_ids: dict[int, int]) -> str:
    """Proposal keys name proposal ids, which change between stores."""
    if key.startswith("proposal:"):
        old = int(key.split(":")[1])
        return f"proposal:{prop_ids.get(old, old)}"
    return key
