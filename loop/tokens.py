"""HTTP API tokens: an admin token per operator, a token per campaign for each client."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db import crud
from db.tokens import TokenRecord, find_token, list_tokens, new_token, revoke_token
from loop.errors import LoopError, NotFoundError

__all__ = ["create_token", "tokens", "revoke", "authenticate", "TokenRecord"]


def create_token(
    *, session: Session, campaign: str | None, admin: bool = False, name: str = ""
) -> tuple[TokenRecord, str]:
    """A token for one campaign, or (admin=True, campaign=None) an admin token.

    Returns:
        The token's record and its secret, which is shown once and stored only hashed.
    """
    if admin == (campaign is not None):
        raise LoopError(
            "a token is either for one campaign or an admin token",
            "give a campaign name, or --admin without one",
        )
    if len(name) > 200:
        raise LoopError(f"token name of {len(name)} characters", "use at most 200")
    cid = None
    if campaign is not None:
        cid = crud.get_campaign(session=session, name=campaign).id
    rec, secret = new_token(session=session, campaign_id=cid, admin=admin, name=name)
    crud.add_event(
        session=session,
        campaign_id=cid,
        kind="token_created",
        payload={"token": rec.id, "name": name, "admin": admin},
    )
    return rec, secret


def tokens(*, session: Session) -> list[TokenRecord]:
    return list_tokens(session=session)


def revoke(*, session: Session, token_id: int) -> TokenRecord:
    rec = revoke_token(session=session, token_id=token_id)
    if rec is None:
        raise NotFoundError(f"no token with id {token_id}", "list them with `loop token list`")
    crud.add_event(
        session=session,
        campaign_id=rec.campaign_id,
        kind="token_revoked",
        payload={"token": rec.id},
    )
    return rec


def authenticate(*, session: Session, secret: str) -> TokenRecord | None:
    """The live token with this secret, or None (unknown or revoked)."""
    if not secret or len(secret) > 200:
        return None
    return find_token(session=session, secret=secret)
