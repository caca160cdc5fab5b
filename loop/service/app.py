"""`loop serve`: the planner over HTTP (FastAPI). Routes only authenticate and translate; every
operation is the same function the CLI calls.

Authentication is `Authorization: Bearer <token>`. An admin token reaches every campaign and may
create campaigns and tokens; a campaign token reaches its one campaign, and any other campaign
answers 403 whether it exists or not.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db import Store, crud
from db.tokens import TokenRecord
from loop.errors import (
    BudgetError,
    ConflictError,
    IngestError,
    LoopError,
    NotFoundError,
    SpecError,
)
from loop.service.schemas import (
    CampaignCreate,
    ClaimRequest,
    CompleteRequest,
    ErrorBody,
    FailRequest,
    HeartbeatRequest,
    IngestRequest,
    ProposeRequest,
    ReasonRequest,
    TokenRequest,
)

__all__ = ["create_app", "DEFAULT_MAX_BODY"]

#: Proposal ids in paths: positive 32-bit integers, like every id in the store.
ProposalId = Annotated[int, Path(ge=1, le=2**31 - 1)]

log = logging.getLogger("loop.service")

#: Largest request body accepted, in bytes (a 100,000-row CSV of a few columns fits).
DEFAULT_MAX_BODY = 16 * 1024 * 1024

_STATUS = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (BudgetError, 409),
    (IngestError, 422),
    (SpecError, 422),
    (LoopError, 400),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (400, "bad request"),
        (401, "missing, unknown or revoked token"),
        (403, "the token does not reach this campaign"),
        (404, "no such campaign or proposal"),
        (409, "conflicts with what is stored"),
        (413, "request body too large"),
        (422, "invalid body or values; nothing was stored"),
        (503, "the store is busy; retry"),
    ]
}


def _finite(o: Any) -> Any:
    """JSON has no NaN or infinity: they travel as null."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


class SafeJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), default=str, allow_nan=False).encode()


def _error(status: int, message: str, hint: str = "", problems: list[str] | None = None) -> Any:
    body = {"error": message, "hint": hint, "problems": list(problems or [])[:200]}
    headers = {"Retry-After": "1"} if status == 503 else None
    return SafeJSON(body, status_code=status, headers=headers)


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, and requests to campaign routes
    without a token with 401, before any body is parsed.

    A body of undeclared length (chunked) is read up to the limit first and handed on whole.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = _error(
            413,
            f"request body over {self.limit} bytes",
            "send fewer rows per request, or start the server with a larger --max-body",
        )
        headers = dict(scope.get("headers", []))
        if (
            str(scope.get("path", "")).startswith("/campaigns")
            and not headers.get(b"authorization", b"").strip()
        ):
            await _error(401, "no API token", "send `Authorization: Bearer <token>`")(
                scope, receive, send
            )
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await too_big(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            body = msg.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                await too_big(scope, receive, send)
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        whole = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    store: Store, *, max_body: int = DEFAULT_MAX_BODY, spec_dir: FilePath | None = None
) -> FastAPI:
    """The HTTP API over `store`.

    Args:
        max_body: Largest request body in bytes.
        spec_dir: Folder that relative paths in specs created over HTTP resolve against
            (default: the server's working directory).
    """
    app = FastAPI(
        title="loop",
        version="1",
        summary="Closed-loop experiment planner: campaigns, proposals, measurements, jobs.",
        default_response_class=SafeJSON,
        responses=_ERRORS,
    )
    base = spec_dir or FilePath.cwd()

    @app.exception_handler(LoopError)
    async def loop_error(_req: Request, err: LoopError) -> Response:
        status = next(code for cls, code in _STATUS if isinstance(err, cls))
        return _error(status, err.message, err.hint, getattr(err, "problems", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: Request, err: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in err.errors()
        ]
        return _error(422, "the request is not valid", "see the OpenAPI schema at /docs", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, err: StarletteHTTPException) -> Response:
        return _error(err.status_code, str(err.detail), "see the OpenAPI schema at /docs")

    @app.exception_handler(OperationalError)
    async def busy(_req: Request, err: OperationalError) -> Response:
        log.warning("store busy: %s", err.orig)
        return _error(503, "the store is busy or unreachable", "retry in a moment")

    @app.exception_handler(PoolTimeout)
    async def no_connection(_req: Request, err: PoolTimeout) -> Response:
        log.warning("no free database connection: %s", err)
        return _error(503, "the service is busy", "retry in a moment")

    @app.exception_handler(Exception)
    async def crash(_req: Request, err: Exception) -> Response:
        ref = uuid.uuid4().hex[:12]
        log.exception("internal error %s", ref)
        return _error(500, f"internal error {ref}", "the server log has the details under this id")

    def token(request: Request) -> TokenRecord:
        from loop.tokens import authenticate

        head = request.headers.get("authorization", "")
        scheme, _, secret = head.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _Denied(401, "no API token", "send `Authorization: Bearer <token>`")
        with store.session_scope() as session:
            rec = authenticate(session=session, secret=secret.strip())
        if rec is None:
            raise _Denied(401, "unknown or revoked API token", "ask an admin for a token")
        return rec

    @app.exception_handler(_Denied)
    async def denied(_req: Request, err: _Denied) -> Response:
        return _error(err.status, err.message, err.hint)

    def admin(tok: TokenRecord = Depends(token)) -> TokenRecord:
        if not tok.admin:
            raise _Denied(403, "this needs an admin token", "`loop token create --admin`")
        return tok

    def actor(tok: TokenRecord) -> str:
        return f"token:{tok.id}:{tok.name}" if tok.name else f"token:{tok.id}"

    def reach(tok: TokenRecord, name: str) -> str:
        if not tok.admin and tok.campaign != name:
            raise _Denied(
                403,
                f"this token does not reach campaign '{name}'",
                "use the token made for that campaign",
            )
        return actor(tok)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: answers without a token."""
        return {"status": "ok"}

    @app.get("/campaigns", tags=["campaigns"])
    def list_campaigns(tok: TokenRecord = Depends(token)) -> Any:
        """Campaigns this token reaches."""
        from loop.status import campaign_status

        with store.session_scope(actor=actor(tok)) as session:
            names = [c.name for c in crud.list_campaigns(session=session)]
            return [
                campaign_status(session=session, name=n)
                for n in names
                if tok.admin or n == tok.campaign
            ]

    @app.post("/campaigns", status_code=201, tags=["campaigns"])
    def create_campaign(body: CampaignCreate, tok: TokenRecord = Depends(admin)) -> Any:
        """Create a campaign from a spec (admin)."""
        from loop.campaigns import create_campaign_from_spec, prepare_campaign_spec
        from loop.spec import parse_spec

        spec, candidates = prepare_campaign_spec(
            parse_spec(body.spec, "request body"), base, "request body"
        )
        with store.session_scope(actor=actor(tok)) as session:
            rec = create_campaign_from_spec(
                session=session, spec=spec, candidates=candidates, name=body.name
            )
            n = crud.count_candidates(session=session, campaign_id=rec.id)
        return {"name": rec.name, "id": rec.id, "candidates": n, "spec": rec.spec}

    @app.get("/campaigns/{name}", tags=["campaigns"])
    def show_campaign(name: str, tok: TokenRecord = Depends(token)) -> Any:
        """The campaign's spec and state."""
        with store.session_scope(actor=reach(tok, name)) as session:
            rec = crud.get_campaign(session=session, name=name)
        return {
            "name": rec.name,
            "status": rec.status,
            "spec_version": rec.spec_version,
            "spec": rec.spec,
        }

    @app.get("/campaigns/{name}/status", tags=["campaigns"])
    def status(name: str, tok: TokenRecord = Depends(token)) -> Any:
        """Counts, budget, best so far, Pareto front and the last model fit."""
        from loop.status import campaign_status

        with store.session_scope(actor=reach(tok, name)) as session:
            return campaign_status(session=session, name=name)

    @app.post("/campaigns/{name}/propose", tags=["loop"])
    def propose(name: str, body: ProposeRequest, tok: TokenRecord = Depends(token)) -> Any:
        """Propose the next batch (fits the surrogate first)."""
        from loop.engine import propose as _propose
        from loop.status import propose_dict

        with store.session_scope(actor=reach(tok, name)) as session:
            res = _propose(
                session=session,
                name=name,
                n=body.n,
                seed=body.seed,
                artifact_dir=store.artifact_dir,
            )
        return propose_dict(res)

    @app.post("/campaigns/{name}/measurements", tags=["loop"])
    def ingest(name: str, body: IngestRequest, tok: TokenRecord = Depends(token)) -> Any:
        """Store measurements, all rows or none (the rules of `loop ingest`)."""
        from loop.ingest import ingest as ingest_text
        from loop.ingest import ingest_rows
        from loop.status import ingest_dict

        if (body.rows is None) == (body.text is None):
            raise LoopError("give either rows or text", "rows: a list of objects; text: a file")
        with store.session_scope(actor=reach(tok, name)) as session:
            if body.rows is not None:
                res = ingest_rows(
                    session=session,
                    name=name,
                    rows=[(i + 1, r) for i, r in enumerate(body.rows)],
                    source="request",
                    default_source=body.source,
                )
            else:
                assert body.text is not None
                res = ingest_text(
                    session=session,
                    name=name,
                    path="-",
                    text=body.text,
                    fmt=body.format,
                    default_source=body.source,
                    label="request",
                )
        return ingest_dict(res)

    @app.get("/campaigns/{name}/proposals", tags=["proposals"])
    def proposals(
        name: str,
        status: str | None = Query(default=None, max_length=20),
        tok: TokenRecord = Depends(token),
    ) -> Any:
        """The campaign's proposals, oldest first."""
        from loop.proposals import list_campaign_proposals
        from loop.status import proposal_dict

        with store.session_scope(actor=reach(tok, name)) as session:
            props = list_campaign_proposals(session=session, name=name, status=status)
        return [proposal_dict(p) for p in props]

    @app.post(
        "/campaigns/{name}/proposals/claim",
        tags=["jobs"],
        responses={204: {"description": "no open job"}},
    )
    def claim(name: str, body: ClaimRequest, tok: TokenRecord = Depends(token)) -> Any:
        """Lease the oldest open job to a worker; 204 when none is open."""
        from loop.jobs import claim_job
        from loop.status import proposal_dict

        with store.session_scope(actor=reach(tok, name)) as session:
            got = claim_job(
                session=session, name=name, worker=body.worker, lease_seconds=body.lease_seconds
            )
        if got is None:
            return Response(status_code=204)
        return {**proposal_dict(got.proposal), "took_over_from": got.took_over_from}

    @app.post("/campaigns/{name}/proposals/{proposal_id}/heartbeat", tags=["jobs"])
    def heartbeat(
        name: str,
        proposal_id: ProposalId,
        body: HeartbeatRequest,
        tok: TokenRecord = Depends(token),
    ) -> Any:
        """Renew a lease; 409 when the worker no longer holds the job."""
        from loop.jobs import heartbeat_job
        from loop.status import proposal_dict

        with store.session_scope(actor=reach(tok, name)) as session:
            p = heartbeat_job(
                session=session,
                name=name,
                proposal_id=proposal_id,
                worker=body.worker,
                lease_seconds=body.lease_seconds,
            )
        return proposal_dict(p)

    @app.post("/campaigns/{name}/proposals/{proposal_id}/complete", tags=["jobs"])
    def complete(
        name: str, proposal_id: ProposalId, body: CompleteRequest, tok: TokenRecord = Depends(token)
    ) -> Any:
        """Store a job's result (once; the same result again is acknowledged)."""
        from loop.jobs import complete_job
        from loop.status import ingest_dict

        with store.session_scope(actor=reach(tok, name)) as session:
            res = complete_job(
                session=session,
                name=name,
                proposal_id=proposal_id,
                values=body.values,
                stds=body.stds,
                worker=body.worker,
                source=body.source,
                provenance=body.provenance,
            )
        return ingest_dict(res)

    def _mark(name: str, proposal_id: ProposalId, status: str, reason: str, who: str) -> Any:
        from loop.proposals import mark_proposal
        from loop.status import proposal_dict

        with store.session_scope(actor=who) as session:
            cid = crud.get_campaign(session=session, name=name).id
            p = mark_proposal(
                session=session,
                proposal_id=proposal_id,
                status=status,
                reason=reason,
                campaign_id=cid,
            )
        return proposal_dict(p)

    @app.post("/campaigns/{name}/proposals/{proposal_id}/fail", tags=["jobs"])
    def fail(
        name: str, proposal_id: ProposalId, body: FailRequest, tok: TokenRecord = Depends(token)
    ) -> Any:
        """Mark a proposal failed: it is not proposed again.

        With `worker`, only the worker holding the job's lease may fail it (409 otherwise)."""
        who = reach(tok, name)
        if not body.worker:
            return _mark(name, proposal_id, "failed", body.reason, who)
        from loop.jobs import fail_job
        from loop.status import proposal_dict

        with store.session_scope(actor=who) as session:
            p = fail_job(
                session=session,
                name=name,
                proposal_id=proposal_id,
                worker=body.worker,
                reason=body.reason,
            )
        return proposal_dict(p)

    @app.post("/campaigns/{name}/proposals/{proposal_id}/abandon", tags=["jobs"])
    def abandon(
        name: str, proposal_id: ProposalId, body: ReasonRequest, tok: TokenRecord = Depends(token)
    ) -> Any:
        """Abandon a proposal that will not be run; it no longer counts against the budget."""
        return _mark(name, proposal_id, "abandoned", body.reason, reach(tok, name))

    @app.get("/campaigns/{name}/export", tags=["campaigns"])
    def export(
        name: str,
        format: str = Query(default="json", pattern="^(json|csv)$"),
        tok: TokenRecord = Depends(token),
    ) -> Any:
        """Every measurement with its proposal and provenance (JSON rows or CSV)."""
        from loop.export import export_rows, rows_to_csv

        with store.session_scope(actor=reach(tok, name)) as session:
            cols, rows = export_rows(session=session, name=name)
        if format == "csv":
            return Response(rows_to_csv(cols, rows), media_type="text/csv")
        return {"columns": cols, "rows": rows}

    @app.get("/campaigns/{name}/events", tags=["campaigns"])
    def events(
        name: str,
        after: int = Query(default=0, ge=0, le=2**31 - 1),
        limit: int = Query(default=1000, ge=1, le=10_000),
        tok: TokenRecord = Depends(token),
    ) -> Any:
        """The audit log: who changed what, when."""
        with store.session_scope(actor=reach(tok, name)) as session:
            rec = crud.get_campaign(session=session, name=name)
            evs = crud.list_events(session=session, campaign_id=rec.id, after=after, limit=limit)
        return [
            {
                "id": e.id,
                "kind": e.kind,
                "actor": e.actor,
                "payload": e.payload,
                "created_at": e.created_at.isoformat(),
            }
            for e in evs
        ]

    @app.post("/campaigns/{name}/tokens", status_code=201, tags=["service"])
    def new_token(name: str, body: TokenRequest, tok: TokenRecord = Depends(admin)) -> Any:
        """Create a token for one campaign (admin); the secret is returned once."""
        from loop.tokens import create_token

        with store.session_scope(actor=actor(tok)) as session:
            rec, secret = create_token(session=session, campaign=name, name=body.name)
        return {"id": rec.id, "campaign": rec.campaign, "token": secret}

    return _limited(app, max_body)


class _Denied(Exception):
    def __init__(self, status: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def _limited(app: FastAPI, max_body: int) -> FastAPI:
    app.add_middleware(BodyLimit, limit=max_body)  # type: ignore[arg-type]
    return app
