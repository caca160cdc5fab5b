"""Proposals as jobs: write locks per campaign, claims with leases, heartbeats.

Many processes write to one campaign at once (HTTP clients, queue workers, adapters). Two kinds
of write are serialized per campaign, each by its own lock held until the transaction ends:

- `write`: ingest, completing a job, failing or abandoning a proposal;
- `propose`: choosing a batch (reads the pending proposals, writes new ones).

PostgreSQL takes a transaction-scoped advisory lock per (kind, campaign), so an ingest does not
wait for a model fit; claims use `SELECT ... FOR UPDATE SKIP LOCKED`, so workers never queue
behind each other. SQLite has one writer per database: every lock is an immediate transaction
(`BEGIN IMMEDIATE`), taken before the first read that the write depends on.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from db.models import Campaign, Proposal, utcnow
from db.records import ProposalRecord

__all__ = [
    "lock_campaign",
    "claim_proposal",
    "renew_lease",
    "as_utc",
    "campaign_fingerprint",
    "locks_writers",
    "lock_proposal",
    "LockKind",
]

LockKind = Literal["write", "propose"]

#: First key of the PostgreSQL advisory lock for each kind; the second is the campaign id.
_PG_LOCK_CLASS = {"write": 0x100F, "propose": 0x1010}


def as_utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=timezone.utc)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _begin_immediate(session: Session) -> None:
    """Turn the session's SQLite transaction into a write transaction now.

    Python's sqlite3 module opens a transaction only at the first data change, so reads before
    it run outside any transaction; `BEGIN IMMEDIATE` takes the database's write lock (waiting
    up to the busy timeout) before the reads the write depends on. After a data change the lock
    is already held and nothing needs doing.
    """
    conn = session.connection()
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not getattr(dbapi, "in_transaction", False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def locks_writers(session: Session) -> bool:
    """True when a campaign lock stops every other writer of the database (SQLite)."""
    return _dialect(session) == "sqlite"


def campaign_fingerprint(*, session: Session, campaign_id: int) -> tuple[object, ...]:
    """Changes whenever a proposal or measurement of the campaign is added or changes state,
    or its spec changes: what a batch is chosen from."""
    from sqlalchemy import func

    from db.models import Measurement

    version = session.scalar(select(Campaign.spec_version).where(Campaign.id == campaign_id))
    props = session.execute(
        select(Proposal.status, func.count(), func.max(Proposal.id))
        .where(Proposal.campaign_id == campaign_id)
        .group_by(Proposal.status)
        .order_by(Proposal.status)
    ).all()
    last = session.scalar(
        select(func.max(Measurement.id)).where(Measurement.campaign_id == campaign_id)
    )
    return (version, tuple(tuple(r) for r in props), last)


def lock_campaign(*, session: Session, campaign_id: int, kind: LockKind = "write") -> None:
    """Hold the campaign's `kind` lock until the session's transaction ends.

    Call it before reading what the write depends on (stored keys, pending proposals).
    """
    dialect = _dialect(session)
    if dialect == "sqlite":
        _begin_immediate(session)
    elif dialect == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :cid)"),
            {"cls": _PG_LOCK_CLASS[kind], "cid": campaign_id},
        )
    else:  # any other server: the campaign row itself
        session.execute(select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())


def claim_proposal(
    *,
    session: Session,
    campaign_id: int,
    worker: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> tuple[ProposalRecord, str | None] | None:
    """Lease the oldest open job of a campaign to `worker`.

    Open jobs are proposals still `proposed`, and `running` ones whose lease has expired (their
    worker died or lost contact); the latter return to the queue here.

    Returns:
        The claimed proposal and the worker whose expired lease it took over (None for a fresh
        job), or None when no job is open.
    """
    from db.crud import _proposal

    now = now or utcnow()
    dialect = _dialect(session)
    if dialect == "sqlite":
        _begin_immediate(session)
    q = (
        select(Proposal)
        .where(
            Proposal.campaign_id == campaign_id,
            or_(
                Proposal.status == "proposed",
                and_(Proposal.status == "running", Proposal.lease_expires_at < now),
            ),
        )
        .order_by(Proposal.id)
        .limit(1)
    )
    if dialect != "sqlite":
        q = q.with_for_update(skip_locked=True)
    row = session.scalars(q).first()
    if row is None:
        return None
    previous = row.lease_owner if row.status == "running" else None
    row.status = "running"
    row.lease_owner = worker
    row.lease_expires_at = now + timedelta(seconds=lease_seconds)
    row.attempts = (row.attempts or 0) + 1
    row.updated_at = now
    session.flush()
    return _proposal(row), previous


def renew_lease(
    *,
    session: Session,
    proposal_id: int,
    worker: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> ProposalRecord | None:
    """Extend `worker`'s lease on a running proposal.

    Returns:
        The proposal with its new expiry, or None when `worker` no longer holds it (another
        worker took it over after the lease expired, or it was completed, failed or abandoned).
    """
    from db.crud import _proposal

    now = now or utcnow()
    q = select(Proposal).where(Proposal.id == proposal_id)
    if _dialect(session) == "sqlite":
        _begin_immediate(session)
    else:
        q = q.with_for_update()
    row = session.scalars(q).first()
    if row is None or row.status != "running" or row.lease_owner != worker:
        return None
    row.lease_expires_at = now + timedelta(seconds=lease_seconds)
    row.updated_at = now
    session.flush()
    return _proposal(row)


def lock_proposal(*, session: Session, proposal_id: int) -> ProposalRecord | None:
    """The proposal, its row locked until the transaction ends (a claim cannot take it over
    meanwhile); SQLite takes the database's write lock instead."""
    from db.crud import _proposal

    q = select(Proposal).where(Proposal.id == proposal_id)
    if _dialect(session) == "sqlite":
        _begin_immediate(session)
    else:
        q = q.with_for_update()
    row = session.scalars(q).first()
    return None if row is None else _proposal(row)
