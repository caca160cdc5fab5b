"""API tokens: only the SHA-256 of each secret is stored; secrets are shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ApiToken, Campaign, utcnow

__all__ = ["TokenRecord", "new_token", "find_token", "list_tokens", "revoke_token", "digest"]

#: Every secret starts with this, so a leaked one is easy to find in logs and repositories.
PREFIX = "loop_"


@dataclass(frozen=True)
class TokenRecord:
    id: int
    campaign_id: int | None
    campaign: str | None
    admin: bool
    name: str
    created_at: datetime
    revoked_at: datetime | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: ApiToken, campaign: str | None) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        campaign=campaign,
        admin=bool(row.admin),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def new_token(
    *, session: Session, campaign_id: int | None, admin: bool, name: str
) -> tuple[TokenRecord, str]:
    """Store a new token; returns its record and the secret (not kept anywhere)."""
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(campaign_id=campaign_id, admin=admin, name=name, secret_sha256=digest(secret))
    session.add(row)
    session.flush()
    camp = None if campaign_id is None else session.get_one(Campaign, campaign_id).name
    return _record(row, camp), secret


def find_token(*, session: Session, secret: str) -> TokenRecord | None:
    """The live (not revoked) token with this secret, or None."""
    row = session.scalars(select(ApiToken).where(ApiToken.secret_sha256 == digest(secret))).first()
    if row is None or row.revoked_at is not None:
        return None
    camp = None if row.campaign_id is None else session.get_one(Campaign, row.campaign_id).name
    return _record(row, camp)


def list_tokens(*, session: Session) -> list[TokenRecord]:
    rows = session.execute(
        select(ApiToken, Campaign.name)
        .join(Campaign, ApiToken.campaign_id == Campaign.id, isouter=True)
        .order_by(ApiToken.id)
    )
    return [_record(t, c) for t, c in rows]


def revoke_token(*, session: Session, token_id: int) -> TokenRecord | None:
    row = session.get(ApiToken, token_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    camp = None if row.campaign_id is None else session.get_one(Campaign, row.campaign_id).name
    return _record(row, camp)
