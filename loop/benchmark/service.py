"""`loop benchmark service`: job-queue throughput and HTTP round trips, next to the in-process
baseline in the same run.

- Queue: `jobs` proposals of the crossed-barrel campaign (data-set oracle) drained by K worker
  processes (`loop.worker.run_worker`: claim with a lease, heartbeat thread, idempotent
  complete), against one process storing the same results directly with `ingest_rows` (no
  leases, no queue).
- Round trips: claim + complete of one job, and ingest of one row, through `LoopClient` over
  HTTP to a uvicorn server on this machine, against the same functions called in-process.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from db import Store, crud, open_store
from loop.campaigns import create_campaign, update_campaign
from loop.engine import propose
from loop.ingest import ingest_rows
from loop.jobs import claim_job, complete_job
from loop.simulators import make_simulator
from loop.spec import parse_spec
from loop.worker import run_worker

__all__ = ["queue_throughput", "round_trips", "CROSSED_BARREL"]

CROSSED_BARREL = Path(__file__).resolve().parents[2] / "examples" / "crossed_barrel.toml"


def _queue(store: Store, name: str, jobs: int, spec_path: Path) -> None:
    with store.session_scope() as session:
        create_campaign(session=session, path=spec_path, name=name)
        update_campaign(
            session=session, name=name, changes={"budget": jobs, "initial_design": jobs}
        )
    with store.session_scope() as session:
        propose(session=session, name=name, n=jobs, artifact_dir=store.artifact_dir)


def _worker(url: str, art: str, name: str, wid: str) -> None:
    store = open_store(url, artifact_dir=art)
    run_worker(store, name, worker_id=wid, lease_seconds=60)
    store.dispose()


def _check(store: Store, name: str, jobs: int) -> None:
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        n = crud.count_measurements(session=session, campaign_id=rec.id)
    if n != jobs:
        raise RuntimeError(f"{name}: {n} measurements for {jobs} jobs")


def queue_throughput(
    url: str, art: Path, *, jobs: int, workers: list[int], spec_path: Path = CROSSED_BARREL
) -> list[dict[str, Any]]:
    """Seconds to finish `jobs` jobs, per worker count, and for the in-process baseline."""
    store = open_store(url, artifact_dir=art)
    rows: list[dict[str, Any]] = []
    try:
        tag = f"{int(time.time() * 1000) % 10**8}"
        # baseline: one process measures and stores each result directly, one transaction each
        name = f"bench-direct-{tag}"
        _queue(store, name, jobs, spec_path)
        with store.session_scope() as session:
            rec = crud.get_campaign(session=session, name=name)
            props = crud.list_proposals(session=session, campaign_id=rec.id)
        sim = make_simulator(parse_spec(rec.spec))
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for p in props:
            values = sim.measure(dict(p.params), rng)
            with store.session_scope() as session:
                ingest_rows(session=session, name=name, rows=[(1, {"proposal_id": p.id, **values})])
        dt = time.perf_counter() - t0
        _check(store, name, jobs)
        rows.append({"mode": "in-process ingest (baseline)", "workers": 1, "seconds": dt})
        ctx = mp.get_context("fork")
        for k in workers:
            name = f"bench-queue-{k}-{tag}"
            _queue(store, name, jobs, spec_path)
            procs = [
                ctx.Process(target=_worker, args=(url, str(art), name, f"bench-{i}"))
                for i in range(k)
            ]
            t0 = time.perf_counter()
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            dt = time.perf_counter() - t0
            _check(store, name, jobs)
            rows.append({"mode": "worker processes", "workers": k, "seconds": dt})
    finally:
        store.dispose()
    for r in rows:
        r["jobs"] = jobs
        r["jobs_per_second"] = jobs / r["seconds"]
    return rows


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "median_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))],
    }


def round_trips(url: str, art: Path, *, rounds: int) -> list[dict[str, Any]]:
    """Median and 95th-percentile latency of claim + complete and of a one-row ingest."""
    import socket

    import uvicorn

    from loop.client import LoopClient
    from loop.service import create_app
    from loop.tokens import create_token

    store = open_store(url, artifact_dir=art)
    tag = f"{int(time.time() * 1000) % 10**8}"
    names = {"http": f"bench-http-{tag}", "in-process": f"bench-call-{tag}"}
    for name in names.values():
        _queue(store, name, 2 * rounds, CROSSED_BARREL)
    with store.session_scope() as session:
        _, token = create_token(session=session, campaign=names["http"], name="bench")
        spec = parse_spec(crud.get_campaign(session=session, name=names["http"]).spec)
    sim = make_simulator(spec)
    known = sim.candidates() or []
    rng = np.random.default_rng(0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out: list[dict[str, Any]] = []
    try:
        cb: dict[str, list[float]] = {"http": [], "in-process": []}
        ing: dict[str, list[float]] = {"http": [], "in-process": []}
        with LoopClient(f"http://127.0.0.1:{port}", token) as client:
            for i in range(rounds):
                for mode, name in names.items():
                    t0 = time.perf_counter()
                    if mode == "http":
                        job = client.claim(name, "bench")
                        assert job is not None
                        client.complete(name, job["id"], sim.measure(job["params"], rng))
                    else:
                        with store.session_scope() as session:
                            c = claim_job(session=session, name=name, worker="bench")
                        assert c is not None
                        values = sim.measure(dict(c.proposal.params), rng)
                        with store.session_scope() as session:
                            complete_job(
                                session=session, name=name, proposal_id=c.proposal.id, values=values
                            )
                    cb[mode].append(1000 * (time.perf_counter() - t0))
                    row = {**known[i % len(known)], "toughness": float(i)}
                    row["measurement_id"] = f"bench-{i}"
                    t0 = time.perf_counter()
                    if mode == "http":
                        client.ingest(name, [row])
                    else:
                        with store.session_scope() as session:
                            ingest_rows(session=session, name=name, rows=[(1, row)])
                    ing[mode].append(1000 * (time.perf_counter() - t0))
        for mode in names:
            out.append({"operation": "claim + complete", "via": mode, **_stats(cb[mode])})
            out.append({"operation": "ingest one row", "via": mode, **_stats(ing[mode])})
    finally:
        server.should_exit = True
        thread.join(10)
        store.dispose()
    for r in out:
        r["rounds"] = rounds
    return out


def temporary_sqlite() -> tuple[str, Path]:
    d = Path(tempfile.mkdtemp(prefix="loop-bench-"))
    return f"sqlite:///{d / 'bench.db'}", d / "artifacts"
