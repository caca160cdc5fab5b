"""`loop worker`: drain a campaign's job queue with a simulator from the registry.

Each job runs in three short transactions (claim, complete or fail) plus heartbeats from a
background thread, so a worker killed at any moment leaves at most one job `running` under a
lease that expires and returns it to the queue. Results are stored once per proposal, so a job
finished by two workers (the first was only slow) is not stored twice.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db import Store, crud
from loop.errors import ConflictError, LoopError
from loop.jobs import (
    DEFAULT_LEASE_SECONDS,
    check_lease_seconds,
    claim_job,
    complete_job,
    fail_job,
    heartbeat_job,
)
from loop.simulators import Simulator, make_simulator
from loop.spec import parse_spec

__all__ = ["WorkerStats", "run_worker", "default_worker_id", "campaign_simulator"]


@dataclass
class WorkerStats:
    """What one worker did."""

    claimed: int = 0
    completed: int = 0
    already: int = 0
    failed: int = 0
    conflicts: int = 0
    lost_leases: int = 0


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def campaign_simulator(
    store: Store, name: str, simulator: str | None = None, base_dir: Path | None = None
) -> Simulator:
    """The simulator campaign `name` names in its spec; `simulator` must match it if given."""
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
    spec = parse_spec(rec.spec, f"campaign '{name}'")
    if simulator is not None and spec.simulator is not None and spec.simulator.name != simulator:
        raise LoopError(
            f"campaign '{name}' is simulated by '{spec.simulator.name}', not '{simulator}'",
            f"run `loop worker {name} --simulator {spec.simulator.name}`",
        )
    return make_simulator(spec, base_dir)


class _Heartbeat:
    """Renews a job's lease every `every` seconds until stopped; notes a lost lease."""

    def __init__(
        self, store: Store, name: str, proposal_id: int, worker: str, lease: float, every: float
    ) -> None:
        self.lost = False
        self._stop = threading.Event()
        self._args = (store, name, proposal_id, worker, lease)
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store, name, pid, worker, lease = self._args
        while not self._stop.wait(self._every):
            try:
                with store.session_scope(actor=f"worker:{worker}") as session:
                    heartbeat_job(
                        session=session,
                        name=name,
                        proposal_id=pid,
                        worker=worker,
                        lease_seconds=lease,
                    )
            except ConflictError:
                self.lost = True
                return
            except Exception:  # the store is briefly away: try again at the next beat
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_worker(
    store: Store,
    name: str,
    *,
    simulator: str | None = None,
    worker_id: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    heartbeat_seconds: float | None = None,
    max_jobs: int | None = None,
    wait: bool = False,
    poll_seconds: float = 2.0,
    min_seconds: float = 0.0,
    seed: int = 0,
    stop: threading.Event | None = None,
    echo: Callable[[str], None] | None = None,
) -> WorkerStats:
    """Claim, run and complete jobs of campaign `name` until the queue is empty.

    Args:
        simulator: Registry name of the simulator; must match the campaign spec's.
        worker_id: Name of this worker in leases and the audit log (default: host-pid).
        lease_seconds: Lease per claim; a worker silent for this long loses its job.
        heartbeat_seconds: Lease renewal period (default: a third of the lease).
        max_jobs: Stop after this many jobs.
        wait: Keep polling an empty queue (every `poll_seconds`) instead of returning.
        min_seconds: Hold each job at least this long (rehearsing a queue with an instant
            oracle, so that leases and heartbeats are exercised as with a real simulation).
        seed: Noise of job `p` is drawn from `default_rng([seed, p])`, so a job that is run
            twice (its lease expired) reports the same values.
        stop: Set it to stop after the current job.
    """
    lease_seconds = check_lease_seconds(lease_seconds)
    beat = heartbeat_seconds if heartbeat_seconds is not None else lease_seconds / 3
    if not (0 < beat < lease_seconds):
        raise LoopError(
            f"heartbeat every {beat:g} s cannot keep a {lease_seconds:g} s lease",
            "give a heartbeat shorter than the lease (a third of it is the default)",
        )
    worker = worker_id or default_worker_id()
    actor = f"worker:{worker}"
    sim = campaign_simulator(store, name, simulator)
    stats = WorkerStats()
    say = echo or (lambda _m: None)
    while stop is None or not stop.is_set():
        if max_jobs is not None and stats.claimed >= max_jobs:
            break
        with store.session_scope(actor=actor) as session:
            claim = claim_job(
                session=session, name=name, worker=worker, lease_seconds=lease_seconds
            )
        if claim is None:
            if not wait:
                break
            (stop.wait if stop is not None else time.sleep)(poll_seconds)
            continue
        stats.claimed += 1
        p = claim.proposal
        hb = _Heartbeat(store, name, p.id, worker, lease_seconds, beat)
        t0 = time.monotonic()
        try:
            rng = np.random.default_rng([seed, p.id, zlib.crc32(name.encode())])
            values = sim.measure(dict(p.params), rng)
            error = None
        except Exception as err:  # the simulator's failure is the job's, not the worker's
            values, error = None, f"{type(err).__name__}: {err}"
        rest = min_seconds - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
        hb.stop()
        stats.lost_leases += int(hb.lost)
        if error is not None:
            try:
                with store.session_scope(actor=actor) as session:
                    fail_job(
                        session=session, name=name, proposal_id=p.id, worker=worker, reason=error
                    )
                stats.failed += 1
                say(f"job {p.id} failed: {error}")
            except ConflictError:
                stats.conflicts += 1
            continue
        assert values is not None
        try:
            with store.session_scope(actor=actor) as session:
                res = complete_job(
                    session=session,
                    name=name,
                    proposal_id=p.id,
                    values=values,
                    worker=worker,
                    source=f"simulation:{sim.name}",
                    provenance={"instrument": sim.name},
                )
        except ConflictError as err:
            stats.conflicts += 1
            say(f"job {p.id}: {err.message}")
            continue
        except LoopError as err:  # the simulator answered values the campaign refuses
            reason = f"result refused: {err}"
            try:
                with store.session_scope(actor=actor) as session:
                    fail_job(
                        session=session, name=name, proposal_id=p.id, worker=worker, reason=reason
                    )
                stats.failed += 1
                say(f"job {p.id} failed: {reason}")
            except ConflictError:
                stats.conflicts += 1
            continue
        stats.completed += res.stored
        stats.already += res.already
        say(f"job {p.id} done: {values}")
    return stats
