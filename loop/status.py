"""Campaign summaries for `loop status` and `loop campaign show`; no model is loaded."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db import crud
from db.queue import as_utc
from loop.spec import parse_spec

__all__ = ["campaign_status", "proposal_dict", "propose_dict", "ingest_dict", "pareto_front"]


def proposal_dict(p: Any) -> dict[str, Any]:
    """A proposal record as plain JSON-able data."""
    return {
        "id": p.id,
        "batch": p.batch,
        "status": p.status,
        "strategy": p.strategy,
        "candidate": p.candidate_idx,
        "params": p.params,
        "predictions": p.predictions,
        "acq_value": p.acq_value,
        "model_fit": p.model_fit_id,
        "reason": p.reason or None,
        "lease_owner": p.lease_owner,
        "lease_expires_at": p.lease_expires_at and as_utc(p.lease_expires_at).isoformat(),
        "attempts": getattr(p, "attempts", 0),
    }


def propose_dict(res: Any) -> dict[str, Any]:
    """A `ProposeResult` as plain JSON-able data (CLI `--json` and HTTP)."""
    fit = res.model_fit
    return {
        "campaign": res.campaign,
        "batch": res.batch,
        "strategy": res.strategy,
        "model_fit": None
        if fit is None
        else {"id": fit.id, "kind": fit.kind, "reused": res.fit_reused, "metrics": fit.metrics},
        "seconds": round(res.seconds, 3),
        "notes": res.notes,
        "proposals": [proposal_dict(p) for p in res.proposals],
    }


def ingest_dict(res: Any) -> dict[str, Any]:
    """An `IngestResult` as plain JSON-able data (CLI `--json` and HTTP)."""
    return {
        "source": res.source,
        "rows": res.rows,
        "stored": res.stored,
        "already_stored": res.already,
        "measurement_ids": res.measurement_ids,
    }


def pareto_front(spec: Any, ms: list[Any]) -> list[dict[str, Any]]:
    """The measurements no other feasible measurement beats on every objective (and ties on
    none), among those meeting every outcome constraint; best first by the first objective."""
    rows = []
    for m in ms:
        if not all(o.name in m.values for o in spec.objectives):
            continue
        ok = True
        for c in spec.constraints:
            v = m.values.get(c.name)
            if (
                v is None
                or (c.lower is not None and v < c.lower)
                or (c.upper is not None and v > c.upper)
            ):
                ok = False
        if ok:
            rows.append((m, [o.sign * float(m.values[o.name]) for o in spec.objectives]))

    def dominated(a: list[float]) -> bool:
        return any(all(x >= y for x, y in zip(b, a, strict=True)) and b != a for _, b in rows)

    front = [(m, y) for m, y in rows if not dominated(y)]
    front.sort(key=lambda r: -r[1][0])
    return [
        {
            "measurement": m.id,
            "proposal": m.proposal_id,
            "params": m.params,
            "values": {o.name: m.values[o.name] for o in spec.objectives},
        }
        for m, _ in front
    ]


def campaign_status(*, session: Session, name: str) -> dict[str, Any]:
    """Counts by status, budget, best measurement per objective and the last model fit."""
    rec = crud.get_campaign(session=session, name=name)
    spec = parse_spec(rec.spec, f"campaign '{name}'")
    counts = crud.count_proposals_by_status(session=session, campaign_id=rec.id)
    used = sum(n for s, n in counts.items() if s != "abandoned")
    ms = crud.list_measurements(session=session, campaign_id=rec.id)
    best: dict[str, Any] = {}
    for o in spec.objectives:
        vals = [m for m in ms if o.name in m.values]
        if vals:
            pick = (max if o.direction == "maximize" else min)(vals, key=lambda m: m.values[o.name])
            best[o.name] = {
                "value": pick.values[o.name],
                "direction": o.direction,
                "params": pick.params,
                "measurement": pick.id,
                "proposal": pick.proposal_id,
                "source": pick.source,
                "provenance": pick.provenance,
            }
    front = pareto_front(spec, ms) if len(spec.objectives) > 1 else None
    target = None
    if spec.stop is not None:
        oname = spec.stop.objective or spec.objectives[0].name
        b = best.get(oname)
        hit = False
        if b is not None:
            hit = (
                b["value"] >= spec.stop.target
                if b["direction"] == "maximize"
                else b["value"] <= spec.stop.target
            )
        target = {"objective": oname, "target": spec.stop.target, "reached": hit}
    fit = crud.latest_model_fit(session=session, campaign_id=rec.id)
    pending = crud.list_proposals(
        session=session, campaign_id=rec.id, statuses=("proposed", "running")
    )
    return {
        "campaign": rec.name,
        "status": rec.status,
        "spec_version": rec.spec_version,
        "space": "pool" if spec.is_pool else "parameters",
        "candidates": crud.count_candidates(session=session, campaign_id=rec.id)
        if spec.is_pool
        else None,
        "objectives": [{"name": o.name, "direction": o.direction} for o in spec.objectives],
        "budget": {"total": spec.budget, "used": used, "left": max(0, spec.budget - used)},
        "proposals": {
            s: counts.get(s, 0) for s in ("proposed", "running", "completed", "failed", "abandoned")
        },
        "measurements": len(ms),
        "best": best,
        "pareto_front": front,
        "stop": target,
        "last_fit": None
        if fit is None
        else {
            "id": fit.id,
            "kind": fit.kind,
            "created_at": fit.created_at.isoformat(),
            "data_version": fit.data_version,
            "metrics": fit.metrics,
        },
        "pending": [proposal_dict(p) for p in pending],
    }
