"""Assemble the report from the store: context, sections, one self-contained HTML page."""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db import crud
from loop.report.base import SECTIONS, ReportContext
from loop.report.figures import esc
from loop.spec import parse_spec
from loop.status import campaign_status

__all__ = ["load_context", "build_report", "CANDIDATE_SAMPLE"]

#: Candidates drawn (uniformly, seeded) for the space views and the projection.
CANDIDATE_SAMPLE = 2000

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}img{max-width:100%;height:auto;display:block;margin:.6rem 0}
.note{color:#57606a;font-style:italic}nav a{margin-right:1rem}.meta{color:#57606a}
"""


def _graphs(session: Session, campaign_id: int, name: str, artifact_dir: Path) -> Any:
    from loop.engine import graph_store

    return graph_store(session, campaign_id, name, artifact_dir)


def load_context(*, session: Session, name: str, artifact_dir: Path) -> ReportContext:
    """Read everything the sections need, in a handful of queries."""
    rec = crud.get_campaign(session=session, name=name)
    spec = parse_spec(rec.spec, f"campaign '{name}'")
    n_cand = crud.count_candidates(session=session, campaign_id=rec.id)
    sample: list[tuple[int, dict[str, Any]]] = []
    if n_cand:
        idxs = (
            list(range(n_cand))
            if n_cand <= CANDIDATE_SAMPLE
            else sorted(random.Random(0).sample(range(n_cand), CANDIDATE_SAMPLE))
        )
        got = crud.get_candidates(session=session, campaign_id=rec.id, idxs=idxs)
        sample = [(i, got[i]) for i in idxs if i in got]
    return ReportContext(
        campaign=rec,
        spec=spec,
        proposals=crud.list_proposals(session=session, campaign_id=rec.id),
        measurements=crud.list_measurements(session=session, campaign_id=rec.id),
        fits=crud.list_model_fits(session=session, campaign_id=rec.id),  # oldest first
        status=campaign_status(session=session, name=name),
        n_candidates=n_cand,
        artifact_dir=artifact_dir,
        candidate_sample=sample,
        graphs=(
            _graphs(session, rec.id, name, artifact_dir)
            if spec.structures is not None and n_cand
            else None
        ),
    )


def build_report(ctx: ReportContext) -> tuple[dict[str, Any], str]:
    """The report's numbers (JSON-able) and its HTML page."""
    t0 = time.perf_counter()
    sections = sorted((cls() for cls in SECTIONS.values()), key=lambda s: s.order)
    doc: dict[str, Any] = {
        "campaign": ctx.campaign.name,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sections": {},
    }
    parts = []
    for s in sections:
        if not s.applies(ctx):
            continue
        out = s.build(ctx)
        doc["sections"][s.name] = out.data
        parts.append((s, out.html))
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    nav = "".join(f'<a href="#{s.name}">{esc(s.title)}</a>' for s, _ in parts)
    body = "".join(f'<section id="{s.name}"><h2>{esc(s.title)}</h2>{h}</section>' for s, h in parts)
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>loop report: {esc(ctx.campaign.name)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style>"
        "</head><body>"
        f"<h1>{esc(ctx.campaign.name)}</h1>"
        f"<p class='meta'>Campaign report generated {esc(doc['generated_at'])} from the campaign "
        f"store (spec v{ctx.campaign.spec_version}, {len(ctx.measurements)} measurements, "
        f"{len(ctx.proposals)} proposals, {len(ctx.fits)} model fits).</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )
    return doc, page
