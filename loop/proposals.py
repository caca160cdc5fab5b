"""Proposal life cycle outside propose and ingest: listing, failing, abandoning."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db import ProposalRecord, crud
from db.models import PROPOSAL_STATUSES
from db.queue import lock_campaign
from loop.errors import ConflictError, LoopError, NotFoundError

__all__ = ["list_campaign_proposals", "mark_proposal"]

_OPEN = ("proposed", "running")


def list_campaign_proposals(
    *, session: Session, name: str, status: str | None = None
) -> list[ProposalRecord]:
    if status is not None and status not in PROPOSAL_STATUSES:
        raise LoopError(f"unknown status {status!r}", f"use one of {', '.join(PROPOSAL_STATUSES)}")
    rec = crud.get_campaign(session=session, name=name)
    return crud.list_proposals(
        session=session, campaign_id=rec.id, statuses=None if status is None else [status]
    )


def mark_proposal(
    *,
    session: Session,
    proposal_id: int,
    status: str,
    reason: str = "",
    campaign_id: int | None = None,
) -> ProposalRecord:
    """Move an open proposal to `failed` or `abandoned`, with an audit event.

    Failed proposals are kept out of later batches (pools) and act as pending points (boxes);
    abandoned ones are free to be proposed again and do not count against the budget.

    Args:
        campaign_id: When given, a proposal of another campaign is reported as not found.
    """
    if status not in ("failed", "abandoned"):
        raise LoopError(f"cannot mark a proposal {status!r}", "use failed or abandoned")
    p = crud.get_proposal(session=session, proposal_id=proposal_id)
    if p is None or (campaign_id is not None and p.campaign_id != campaign_id):
        raise NotFoundError(
            f"no proposal with id {proposal_id}"
            + ("" if campaign_id is None else " in this campaign"),
            "list them with `loop proposal list CAMPAIGN`",
        )
    lock_campaign(session=session, campaign_id=p.campaign_id, kind="write")
    p = crud.get_proposal(session=session, proposal_id=proposal_id)
    assert p is not None
    if p.status not in _OPEN:
        raise ConflictError(
            f"proposal {proposal_id} is {p.status}; only proposed or running "
            "proposals can be failed or abandoned",
            "leave it as it is" if p.status == "completed" else "nothing to do",
        )
    out = crud.set_proposal_status(
        session=session, proposal_id=proposal_id, status=status, reason=reason
    )
    crud.add_event(
        session=session,
        campaign_id=p.campaign_id,
        kind=f"proposal_{status}",
        payload={"proposal": proposal_id, "reason": reason},
    )
    return out
