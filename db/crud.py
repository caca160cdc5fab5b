"""Data access functions. Each takes the session as a keyword-only argument and returns records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from db.models import (
    Campaign,
    CampaignSpecVersion,
    Candidate,
    Event,
    Measurement,
    ModelFit,
    Proposal,
    utcnow,
)
from db.records import (
    CampaignRecord,
    EventRecord,
    MeasurementRecord,
    ModelFitRecord,
    NewMeasurement,
    NewProposal,
    ProposalRecord,
)

__all__ = [
    "campaign_exists",
    "create_campaign",
    "get_campaign",
    "find_campaign",
    "list_campaigns",
    "update_campaign_spec",
    "set_campaign_status",
    "spec_history",
    "add_candidates",
    "list_candidates",
    "get_candidates",
    "count_candidates",
    "next_batch",
    "add_proposals",
    "list_proposals",
    "get_proposal",
    "set_proposal_status",
    "count_proposals_by_status",
    "list_measurements",
    "count_measurements",
    "measurements_by_key",
    "add_measurements",
    "add_model_fit",
    "get_model_fit",
    "latest_model_fit",
    "find_model_fit",
    "list_model_fits",
    "fits_with_checkpoints",
    "clear_checkpoint",
    "add_event",
    "list_events",
]


# -- conversion ---------------------------------------------------------------------------------


def _campaign(row: Campaign) -> CampaignRecord:
    return CampaignRecord(
        id=row.id,
        name=row.name,
        spec=row.spec,
        spec_version=row.spec_version,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _proposal(row: Proposal) -> ProposalRecord:
    return ProposalRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        batch=row.batch,
        candidate_idx=row.candidate_idx,
        params=row.params,
        status=row.status,
        strategy=row.strategy,
        predictions=row.predictions or {},
        acq_value=row.acq_value,
        model_fit_id=row.model_fit_id,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        reason=row.reason or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=row.attempts or 0,
    )


def _measurement(row: Measurement) -> MeasurementRecord:
    return MeasurementRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        proposal_id=row.proposal_id,
        candidate_idx=row.candidate_idx,
        params=row.params,
        values=row.values,
        stds=row.stds or {},
        source=row.source,
        provenance=row.provenance or {},
        idempotency_key=row.idempotency_key,
        measured_at=row.measured_at,
        created_at=row.created_at,
    )


def _fit(row: ModelFit) -> ModelFitRecord:
    return ModelFitRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        name=row.name,
        kind=row.kind,
        settings=row.settings or {},
        data_version=row.data_version,
        metrics=row.metrics or {},
        heldout=row.heldout or [],
        checkpoint_path=row.checkpoint_path,
        checkpoint_sha256=row.checkpoint_sha256,
        created_at=row.created_at,
    )


def _event(row: Event) -> EventRecord:
    return EventRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        kind=row.kind,
        payload=row.payload or {},
        created_at=row.created_at,
        actor=row.actor or "",
    )


# -- campaigns ----------------------------------------------------------------------------------


def campaign_exists(*, session: Session, name: str) -> bool:
    return session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None


def create_campaign(
    *,
    session: Session,
    name: str,
    spec: dict[str, Any],
    note: str = "created",
    status: str = "active",
    created_at: datetime | None = None,
) -> CampaignRecord:
    """Insert a campaign and its first spec version. The caller checks the name is free."""
    now = created_at or utcnow()
    row = Campaign(
        name=name, spec=spec, spec_version=1, status=status, created_at=now, updated_at=now
    )
    session.add(row)
    session.flush()
    session.add(
        CampaignSpecVersion(campaign_id=row.id, version=1, spec=spec, note=note, created_at=now)
    )
    session.flush()
    return _campaign(row)


def find_campaign(*, session: Session, name: str) -> CampaignRecord | None:
    row = session.scalar(select(Campaign).where(Campaign.name == name))
    return _campaign(row) if row is not None else None


def get_campaign(*, session: Session, name: str) -> CampaignRecord:
    """The campaign called `name`; raises `NotFoundError` naming the known ones."""
    rec = find_campaign(session=session, name=name)
    if rec is None:
        from loop.errors import NotFoundError

        known = session.scalars(select(Campaign.name).order_by(Campaign.name).limit(20)).all()
        raise NotFoundError(
            f"no campaign named '{name}'",
            f"known campaigns: {', '.join(known)}"
            if known
            else "create one with `loop campaign create SPEC.toml`",
        )
    return rec


def list_campaigns(*, session: Session) -> list[CampaignRecord]:
    return [_campaign(r) for r in session.scalars(select(Campaign).order_by(Campaign.id))]


def update_campaign_spec(
    *, session: Session, campaign_id: int, spec: dict[str, Any], note: str
) -> CampaignRecord:
    """Store a new spec version and make it current."""
    row = session.get_one(Campaign, campaign_id)
    row.spec_version += 1
    row.spec = spec
    row.updated_at = utcnow()
    session.add(
        CampaignSpecVersion(campaign_id=campaign_id, version=row.spec_version, spec=spec, note=note)
    )
    session.flush()
    return _campaign(row)


def set_campaign_status(*, session: Session, campaign_id: int, status: str) -> None:
    row = session.get_one(Campaign, campaign_id)
    row.status = status
    row.updated_at = utcnow()


def spec_history(*, session: Session, campaign_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(CampaignSpecVersion)
        .where(CampaignSpecVersion.campaign_id == campaign_id)
        .order_by(CampaignSpecVersion.version)
    )
    return [
        {"version": r.version, "spec": r.spec, "note": r.note, "created_at": r.created_at}
        for r in rows
    ]


# -- candidates ---------------------------------------------------------------------------------


def add_candidates(
    *,
    session: Session,
    campaign_id: int,
    rows: Iterable[tuple[str | None, dict[str, Any]]],
    chunk_size: int = 5000,
) -> int:
    """Store a pool: `rows` are `(key, params)` in pool order; returns how many.

    `rows` may be any iterable, a generator included: it is read and inserted `chunk_size` rows
    per statement, so a large pool streams into the store without being held in memory.
    """
    n = 0
    chunk: list[dict[str, Any]] = []
    for key, params in rows:
        chunk.append({"campaign_id": campaign_id, "idx": n, "key": key, "params": params})
        n += 1
        if len(chunk) >= chunk_size:
            session.execute(insert(Candidate), chunk)
            chunk = []
    if chunk:
        session.execute(insert(Candidate), chunk)
    session.flush()
    return n


def list_candidates(
    *, session: Session, campaign_id: int
) -> list[tuple[int, str | None, dict[str, Any]]]:
    rows = session.execute(
        select(Candidate.idx, Candidate.key, Candidate.params)
        .where(Candidate.campaign_id == campaign_id)
        .order_by(Candidate.idx)
    )
    return [(r.idx, r.key, r.params) for r in rows]


def get_candidates(
    *, session: Session, campaign_id: int, idxs: list[int]
) -> dict[int, dict[str, Any]]:
    """The parameters of the pool rows `idxs` (pool positions), by position."""
    out: dict[int, dict[str, Any]] = {}
    want = sorted(set(int(i) for i in idxs))
    for lo in range(0, len(want), 500):
        rows = session.execute(
            select(Candidate.idx, Candidate.params).where(
                Candidate.campaign_id == campaign_id, Candidate.idx.in_(want[lo : lo + 500])
            )
        )
        out.update({int(r.idx): r.params for r in rows})
    return out


def count_candidates(*, session: Session, campaign_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Candidate).where(Candidate.campaign_id == campaign_id)
        )
        or 0
    )


# -- proposals ----------------------------------------------------------------------------------


def next_batch(*, session: Session, campaign_id: int) -> int:
    top = session.scalar(
        select(func.max(Proposal.batch)).where(Proposal.campaign_id == campaign_id)
    )
    return 1 if top is None else int(top) + 1


def add_proposals(
    *,
    session: Session,
    campaign_id: int,
    batch: int,
    items: Iterable[NewProposal],
    model_fit_id: int | None = None,
) -> list[ProposalRecord]:
    rows = [
        Proposal(
            campaign_id=campaign_id,
            batch=batch,
            candidate_idx=it.candidate_idx,
            params=it.params,
            status="proposed",
            strategy=it.strategy,
            predictions=it.predictions,
            acq_value=it.acq_value,
            model_fit_id=model_fit_id,
            reason="",
        )
        for it in items
    ]
    session.add_all(rows)
    session.flush()
    return [_proposal(r) for r in rows]


def list_proposals(
    *, session: Session, campaign_id: int, statuses: Sequence[str] | None = None
) -> list[ProposalRecord]:
    q = select(Proposal).where(Proposal.campaign_id == campaign_id)
    if statuses is not None:
        q = q.where(Proposal.status.in_(list(statuses)))
    return [_proposal(r) for r in session.scalars(q.order_by(Proposal.id))]


def get_proposal(*, session: Session, proposal_id: int) -> ProposalRecord | None:
    if not 1 <= proposal_id < 2**31:  # no such id can exist; the driver would overflow
        return None
    row = session.get(Proposal, proposal_id)
    return _proposal(row) if row is not None else None


def set_proposal_status(
    *, session: Session, proposal_id: int, status: str, reason: str | None = None
) -> ProposalRecord:
    row = session.get_one(Proposal, proposal_id)
    row.status = status
    if reason is not None:
        row.reason = reason
    if status not in ("running",):
        row.lease_owner = None
        row.lease_expires_at = None
    row.updated_at = utcnow()
    session.flush()
    return _proposal(row)


def count_proposals_by_status(*, session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Proposal.status, func.count())
        .where(Proposal.campaign_id == campaign_id)
        .group_by(Proposal.status)
    )
    return {status: int(n) for status, n in rows}


# -- measurements -------------------------------------------------------------------------------


def list_measurements(*, session: Session, campaign_id: int) -> list[MeasurementRecord]:
    rows = session.scalars(
        select(Measurement).where(Measurement.campaign_id == campaign_id).order_by(Measurement.id)
    )
    return [_measurement(r) for r in rows]


def count_measurements(*, session: Session, campaign_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Measurement)
            .where(Measurement.campaign_id == campaign_id)
        )
        or 0
    )


def measurements_by_key(
    *, session: Session, campaign_id: int, keys: Sequence[str]
) -> dict[str, MeasurementRecord]:
    """Stored measurements whose idempotency key is among `keys`."""
    out: dict[str, MeasurementRecord] = {}
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), 500):
        rows = session.scalars(
            select(Measurement).where(
                Measurement.campaign_id == campaign_id,
                Measurement.idempotency_key.in_(keys[i : i + 500]),
            )
        )
        out.update({r.idempotency_key: _measurement(r) for r in rows})
    return out


def add_measurements(
    *, session: Session, campaign_id: int, items: Sequence[NewMeasurement]
) -> list[MeasurementRecord]:
    rows = [
        Measurement(
            campaign_id=campaign_id,
            proposal_id=it.proposal_id,
            candidate_idx=it.candidate_idx,
            params=it.params,
            values=it.values,
            stds=it.stds,
            source=it.source,
            provenance=it.provenance,
            idempotency_key=it.idempotency_key,
            measured_at=it.measured_at,
        )
        for it in items
    ]
    session.add_all(rows)
    session.flush()
    done = {it.proposal_id for it in items if it.proposal_id is not None}
    if done:
        session.execute(
            update(Proposal)
            .where(Proposal.id.in_(done))
            .values(
                status="completed", lease_owner=None, lease_expires_at=None, updated_at=utcnow()
            )
        )
    return [_measurement(r) for r in rows]


# -- model fits ---------------------------------------------------------------------------------


def add_model_fit(
    *,
    session: Session,
    campaign_id: int | None,
    name: str,
    kind: str,
    settings: dict[str, Any],
    data_version: str,
    metrics: dict[str, Any],
    heldout: list[Any],
    checkpoint_path: str | None = None,
    checkpoint_sha256: str | None = None,
) -> ModelFitRecord:
    row = ModelFit(
        campaign_id=campaign_id,
        name=name,
        kind=kind,
        settings=settings,
        data_version=data_version,
        metrics=metrics,
        heldout=heldout,
        checkpoint_path=checkpoint_path,
        checkpoint_sha256=checkpoint_sha256,
    )
    session.add(row)
    session.flush()
    return _fit(row)


def get_model_fit(*, session: Session, fit_id: int) -> ModelFitRecord | None:
    row = session.get(ModelFit, fit_id)
    return _fit(row) if row is not None else None


def latest_model_fit(*, session: Session, campaign_id: int) -> ModelFitRecord | None:
    row = session.scalar(
        select(ModelFit)
        .where(ModelFit.campaign_id == campaign_id)
        .order_by(ModelFit.id.desc())
        .limit(1)
    )
    return _fit(row) if row is not None else None


def find_model_fit(
    *, session: Session, campaign_id: int, kind: str, data_version: str
) -> ModelFitRecord | None:
    """The newest fit of `kind` on exactly this data version that still has its checkpoint."""
    row = session.scalar(
        select(ModelFit)
        .where(
            ModelFit.campaign_id == campaign_id,
            ModelFit.kind == kind,
            ModelFit.data_version == data_version,
            ModelFit.checkpoint_path.is_not(None),
        )
        .order_by(ModelFit.id.desc())
        .limit(1)
    )
    return _fit(row) if row is not None else None


def list_model_fits(*, session: Session, campaign_id: int) -> list[ModelFitRecord]:
    rows = session.scalars(
        select(ModelFit).where(ModelFit.campaign_id == campaign_id).order_by(ModelFit.id)
    )
    return [_fit(r) for r in rows]


def fits_with_checkpoints(*, session: Session, campaign_id: int) -> list[ModelFitRecord]:
    rows = session.scalars(
        select(ModelFit)
        .where(ModelFit.campaign_id == campaign_id, ModelFit.checkpoint_path.is_not(None))
        .order_by(ModelFit.id.desc())
    )
    return [_fit(r) for r in rows]


def named_model_fits(*, session: Session, name: str | None = None) -> list[ModelFitRecord]:
    """Reusable fits stored without a campaign (pretrained models), newest first; all of them,
    or those called `name`."""
    q = select(ModelFit).where(ModelFit.campaign_id.is_(None))
    if name is not None:
        q = q.where(ModelFit.name == name)
    return [_fit(r) for r in session.scalars(q.order_by(ModelFit.id.desc()))]


def delete_model_fit(*, session: Session, fit_id: int) -> None:
    """Delete a fit row (proposals that cite it keep their rows, with the link cleared)."""
    row = session.get_one(ModelFit, fit_id)
    session.delete(row)
    session.flush()


def clear_checkpoint(*, session: Session, fit_id: int) -> None:
    row = session.get_one(ModelFit, fit_id)
    row.checkpoint_path = None


# -- events -------------------------------------------------------------------------------------


def add_event(
    *,
    session: Session,
    campaign_id: int | None,
    kind: str,
    payload: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    actor: str | None = None,
) -> None:
    """Append an audit event; the actor defaults to the one the session was opened for."""
    session.add(
        Event(
            campaign_id=campaign_id,
            kind=kind,
            payload=payload or {},
            actor=(actor if actor is not None else str(session.info.get("actor", "")))[:200],
            created_at=created_at or utcnow(),
        )
    )


def list_events(
    *, session: Session, campaign_id: int, after: int = 0, limit: int | None = None
) -> list[EventRecord]:
    """The campaign's events with id above `after`, oldest first (at most `limit`)."""
    q = (
        select(Event)
        .where(Event.campaign_id == campaign_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    )
    return [_event(r) for r in session.scalars(q)]
