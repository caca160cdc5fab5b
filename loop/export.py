"""`loop export`: every measurement with its proposal and provenance, as CSV or JSON rows."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.orm import Session

from db import crud
from loop.space import input_columns
from loop.spec import parse_spec

__all__ = ["export_rows", "rows_to_csv"]


def export_rows(*, session: Session, name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and one row per measurement, joined with the proposal that asked for it."""
    rec = crud.get_campaign(session=session, name=name)
    spec = parse_spec(rec.spec, f"campaign '{name}'")
    props = {p.id: p for p in crud.list_proposals(session=session, campaign_id=rec.id)}
    inputs = input_columns(spec)
    if spec.structures is not None:
        inputs = inputs + ["id", "formula"]  # the structure's name beside its pool index
    outcomes = spec.outcome_names
    measured = [spec.hull.energy] if spec.hull is not None else []
    cols = (
        ["measurement", "measurement_id", "proposal_id", "batch", "candidate"]
        + inputs
        + outcomes
        + measured
        + [f"{o}_std" for o in outcomes]
        + [f"predicted_{o}" for o in outcomes]
        + [f"predicted_{o}_std" for o in outcomes]
        + [
            "acq_value",
            "model_fit",
            "strategy",
            "source",
            "operator",
            "instrument",
            "raw_sha256",
            "notes",
            "file",
            "line",
            "measured_at",
            "stored_at",
        ]
    )
    out = []
    for m in crud.list_measurements(session=session, campaign_id=rec.id):
        p = props.get(m.proposal_id) if m.proposal_id else None
        key = m.idempotency_key
        row: dict[str, Any] = {
            "measurement": m.id,
            "measurement_id": key[3:] if key.startswith("id:") else "",
            "proposal_id": m.proposal_id or "",
            "batch": p.batch if p else "",
            "candidate": "" if m.candidate_idx is None else m.candidate_idx,
        }
        row.update({c: m.params.get(c, "") for c in inputs})
        row.update({o: m.values.get(o, "") for o in outcomes + measured})
        row.update({f"{o}_std": m.stds.get(o, "") for o in outcomes})
        for o in outcomes:
            pred = (p.predictions or {}).get(o, {}) if p else {}
            row[f"predicted_{o}"] = pred.get("mean", "")
            row[f"predicted_{o}_std"] = pred.get("std", "")
        row.update(
            {
                "acq_value": "" if not p or p.acq_value is None else p.acq_value,
                "model_fit": (p.model_fit_id or "") if p else "",
                "strategy": p.strategy if p else "",
                "source": m.source,
                **{
                    k: m.provenance.get(k, "")
                    for k in ("operator", "instrument", "raw_sha256", "notes", "file", "line")
                },
                "measured_at": m.measured_at.isoformat() if m.measured_at else "",
                "stored_at": m.created_at.isoformat(),
            }
        )
        out.append(row)
    return cols, out


def rows_to_csv(cols: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
