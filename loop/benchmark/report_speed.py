"""`loop benchmark report-time`: how long `loop report` takes for a campaign of N measurements.

The campaign is the 6-d unit box with the (negated) Hartmann-6 function: `measurements`
historical rows, then `rounds` model-based batches of 8 whose results are stored too, so every
section has data (fits with held-out predictions, decisions, a representation to project).
Times: reading the store (`load_context`), each section, and the whole `loop report` command in
a fresh process (Python and library start-up included).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from db import open_store
from loop.benchmark.propose import _hartmann6
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.ingest import ingest_rows
from loop.report import SECTIONS, load_context

__all__ = ["report_timing"]

_SPEC = """\
name = "h6"
budget = {budget}
batch_size = 8
initial_design = 2
{params}
[[objectives]]
name = "y"
direction = "maximize"
[model]
surrogate = "{surrogate}"
acquisition = "qlognei"
"""


def report_timing(
    measurements: int, *, rounds: int = 2, surrogate: str = "ensemble", seed: int = 0
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="loop-report-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = open_store(url, artifact_dir=tmp / "artifacts")
    params = "\n".join(
        f'[[parameters]]\ntype = "float"\nname = "x{i}"\nlow = 0.0\nhigh = 1.0' for i in range(6)
    )
    spec = tmp / "h6.toml"
    spec.write_text(_SPEC.format(budget=8 * rounds + 8, params=params, surrogate=surrogate))
    with store.session_scope() as session:
        create_campaign(session=session, path=spec)
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(measurements, 6, generator=g, dtype=torch.double)
    Y = -_hartmann6(X)
    rows = [
        (i + 1, {**{f"x{j}": float(X[i, j]) for j in range(6)}, "y": float(Y[i])})
        for i in range(measurements)
    ]
    t0 = time.perf_counter()
    with store.session_scope() as session:
        ingest_rows(session=session, name="h6", rows=rows, source="historical")
    ingest_s = time.perf_counter() - t0
    fit_s = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        with store.session_scope() as session:
            res = propose(session=session, name="h6", n=8, artifact_dir=store.artifact_dir)
        fit_s += time.perf_counter() - t0
        Xq = torch.tensor([[p.params[f"x{j}"] for j in range(6)] for p in res.proposals])
        Yq = -_hartmann6(Xq.double())
        with store.session_scope() as session:
            ingest_rows(
                session=session,
                name="h6",
                rows=[
                    (i + 1, {"proposal_id": p.id, "y": float(Yq[i])})
                    for i, p in enumerate(res.proposals)
                ],
            )
    t0 = time.perf_counter()
    with store.session_scope() as session:
        ctx = load_context(session=session, name="h6", artifact_dir=store.artifact_dir)
    sections = {"load_context": time.perf_counter() - t0}
    for cls in sorted(SECTIONS.values(), key=lambda c: c.order):
        s = cls()
        if s.applies(ctx):
            t0 = time.perf_counter()
            s.build(ctx)
            sections[s.name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = tmp / "report.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loop.cli",
            "--db",
            url,
            "--artifacts",
            str(tmp / "artifacts"),
            "report",
            "h6",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    cli_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    store.dispose()
    return {
        "measurements": len(ctx.measurements),
        "proposals": len(ctx.proposals),
        "fits": len(ctx.fits),
        "surrogate": surrogate,
        "ingest_seconds": ingest_s,
        "propose_seconds": fit_s,
        "section_seconds": sections,
        "in_process_seconds": sum(sections.values()),
        "cli_seconds": cli_s,
        "html_bytes": out.stat().st_size,
    }
