"""Proposals as jobs for simulation workers and instruments: claim, heartbeat, complete, fail.

A job is a proposal. A worker claims it with a lease, renews the lease while it runs and
completes it with the measured values; a lease that runs out returns the job to the queue. A
result is stored once per proposal (idempotency key `proposal:<id>`): when two workers finish
the same job (the first lost its lease while still running), the first result is kept, the same
result again is acknowledged, and a different one is refused, so nothing is lost or stored twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db import ProposalRecord, crud
from db.queue import as_utc, claim_proposal, lock_campaign, lock_proposal, renew_lease
from loop.errors import ConflictError, IngestError, LoopError, NotFoundError
from loop.ingest import IngestResult, ingest_rows

__all__ = [
    "Claim",
    "claim_job",
    "heartbeat_job",
    "complete_job",
    "fail_job",
    "check_lease_seconds",
    "DEFAULT_LEASE_SECONDS",
    "MAX_LEASE_SECONDS",
]

#: A worker that has not renewed its lease for this long is presumed dead.
DEFAULT_LEASE_SECONDS = 60.0
#: Leases longer than a day hide dead workers for too long: renew instead.
MAX_LEASE_SECONDS = 86400.0


@dataclass(frozen=True)
class Claim:
    """A job leased to a worker."""

    proposal: ProposalRecord
    lease_expires_at: datetime
    #: The worker whose expired lease this claim took over, if any.
    took_over_from: str | None


def check_lease_seconds(lease_seconds: float) -> float:
    if not (isinstance(lease_seconds, (int, float)) and math.isfinite(lease_seconds)) or not (
        1 <= lease_seconds <= MAX_LEASE_SECONDS
    ):
        raise LoopError(
            f"lease of {lease_seconds!r} s is out of range",
            f"give a lease between 1 and {MAX_LEASE_SECONDS:.0f} seconds and renew it with "
            "heartbeats while the job runs",
        )
    return float(lease_seconds)


def _check_worker(worker: str) -> str:
    worker = (worker or "").strip()
    if not worker or len(worker) > 200:
        raise LoopError(
            f"worker name {worker!r} must have 1 to 200 characters",
            "name the worker (host and process id, say) so its leases can be told apart",
        )
    return worker


def claim_job(
    *, session: Session, name: str, worker: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> Claim | None:
    """Lease campaign `name`'s oldest open job to `worker`; None when no job is open."""
    worker = _check_worker(worker)
    lease_seconds = check_lease_seconds(lease_seconds)
    rec = crud.get_campaign(session=session, name=name)
    got = claim_proposal(
        session=session, campaign_id=rec.id, worker=worker, lease_seconds=lease_seconds
    )
    if got is None:
        return None
    p, previous = got
    payload: dict[str, Any] = {"proposal": p.id, "worker": worker, "attempt": p.attempts}
    if previous is not None:
        payload["lease_expired_for"] = previous
    crud.add_event(session=session, campaign_id=rec.id, kind="job_claimed", payload=payload)
    expires = as_utc(p.lease_expires_at)
    assert expires is not None
    return Claim(p, expires, previous)


def _job(session: Session, name: str, proposal_id: int) -> tuple[int, ProposalRecord]:
    rec = crud.get_campaign(session=session, name=name)
    p = crud.get_proposal(session=session, proposal_id=proposal_id)
    if p is None or p.campaign_id != rec.id:
        raise NotFoundError(
            f"campaign '{name}' has no proposal {proposal_id}",
            f"list its proposals with `loop proposal list {name}`",
        )
    return rec.id, p


def heartbeat_job(
    *,
    session: Session,
    name: str,
    proposal_id: int,
    worker: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> ProposalRecord:
    """Renew `worker`'s lease on a running job.

    Raises:
        ConflictError: The worker no longer holds the job (its lease expired and another worker
            claimed it, or the job was completed, failed or abandoned): stop working on it.
    """
    worker = _check_worker(worker)
    lease_seconds = check_lease_seconds(lease_seconds)
    _cid, p = _job(session, name, proposal_id)
    out = renew_lease(session=session, proposal_id=p.id, worker=worker, lease_seconds=lease_seconds)
    if out is None:
        now = crud.get_proposal(session=session, proposal_id=p.id)
        assert now is not None
        held = f", leased to {now.lease_owner}" if now.status == "running" else ""
        raise ConflictError(
            f"worker {worker!r} does not hold proposal {p.id} (it is {now.status}{held})",
            "stop working on it; claim another job",
        )
    return out


def complete_job(
    *,
    session: Session,
    name: str,
    proposal_id: int,
    values: dict[str, Any],
    stds: dict[str, Any] | None = None,
    worker: str = "",
    source: str = "simulation",
    provenance: dict[str, Any] | None = None,
) -> IngestResult:
    """Store the result of a job, validated exactly as `loop ingest` validates a row.

    Completing twice with the same values is acknowledged (`already` = 1) and stores nothing.

    Raises:
        NotFoundError: The campaign has no such proposal.
        ConflictError: The job already has a different result (another worker finished it
            first); the new values are not stored.
        IngestError: The values do not fit the campaign (missing objective, not a number).
    """
    cid, p = _job(session, name, proposal_id)
    lock_campaign(session=session, campaign_id=cid, kind="write")
    if not isinstance(values, dict) or not values:
        raise LoopError(
            f"the result of proposal {p.id} has no values",
            "give every objective and constraint of the campaign, e.g. {'yield': 0.8}",
        )
    reserved = {"proposal_id", "replicate", "measurement_id"} & set(values)
    if reserved:
        raise LoopError(
            f"values may not set {sorted(reserved)}", "give objective and constraint values only"
        )
    row: dict[str, Any] = {"proposal_id": p.id, **values, "source": source}
    for k, v in (stds or {}).items():
        row[f"{k}_std"] = v
    for k in ("operator", "instrument", "raw_sha256", "notes"):
        if provenance and provenance.get(k) not in (None, ""):
            row[k] = provenance[k]
    if worker and "operator" not in row:
        row["operator"] = worker
    stored = crud.measurements_by_key(session=session, campaign_id=cid, keys=[f"proposal:{p.id}"])
    try:
        res = ingest_rows(session=session, name=name, rows=[(1, row)], source=f"job {p.id}")
    except IngestError as err:
        old = stored.get(f"proposal:{p.id}")
        if old is None or not any("already has a result" in x for x in err.problems):
            raise
        raise ConflictError(
            f"proposal {p.id} already has a result ({old.values}, from "
            f"{old.provenance.get('operator', old.source)}); these values were not stored",
            "a job is completed once: the first result is kept",
        ) from None
    if res.stored:
        crud.add_event(
            session=session,
            campaign_id=cid,
            kind="job_completed",
            payload={"proposal": p.id, "worker": worker, "measurement": res.measurement_ids[0]},
        )
    return res


def fail_job(
    *, session: Session, name: str, proposal_id: int, worker: str, reason: str
) -> ProposalRecord:
    """Mark a job failed by the worker that holds it (a simulator error, say).

    Raises:
        ConflictError: `worker` no longer holds the job; its state is left as it is.
    """
    from loop.proposals import mark_proposal

    worker = _check_worker(worker)
    cid, p = _job(session, name, proposal_id)
    lock_campaign(session=session, campaign_id=cid, kind="write")
    now = lock_proposal(session=session, proposal_id=p.id)
    assert now is not None
    if now.status != "running" or now.lease_owner != worker:
        raise ConflictError(
            f"worker {worker!r} does not hold proposal {p.id} (it is {now.status}); "
            "not marked failed",
            "leave it to the worker that holds it",
        )
    return mark_proposal(
        session=session, proposal_id=p.id, status="failed", reason=reason, campaign_id=cid
    )
