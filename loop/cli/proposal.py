"""`loop proposal ...`: list proposals and mark the ones a lab could not run."""

from __future__ import annotations

import typer

from loop.cli.common import LoopGroup, console, emit_json, open_store, params_text

app = typer.Typer(cls=LoopGroup, no_args_is_help=True, help="List, fail or abandon proposals.")


@app.command("list")
def list_(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    status: str | None = typer.Option(None, help="Only this status (e.g. proposed)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """List a campaign's proposals."""
    from loop.proposals import list_campaign_proposals
    from loop.status import proposal_dict

    store = open_store(ctx)
    with store.session_scope() as session:
        props = list_campaign_proposals(session=session, name=campaign, status=status)
    if as_json:
        emit_json([proposal_dict(p) for p in props])
        return
    from rich.table import Table

    t = Table(title=f"{campaign}: proposals")
    for c in ("id", "batch", "status", "strategy", "parameters"):
        t.add_column(c)
    for p in props:
        t.add_row(
            str(p.id),
            str(p.batch),
            p.status,
            p.strategy,
            params_text(p.params),
        )
    console().print(t)


@app.command()
def fail(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    reason: str = typer.Option(..., "--reason", help="Why it failed (kept in the audit log)."),
) -> None:
    """Mark a proposal failed: it is not proposed again."""
    from loop.proposals import mark_proposal

    store = open_store(ctx)
    with store.session_scope() as session:
        p = mark_proposal(session=session, proposal_id=proposal_id, status="failed", reason=reason)
    typer.echo(f"proposal {p.id} failed: {reason}")


@app.command()
def abandon(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="Proposal id."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the audit log)."),
) -> None:
    """Abandon a proposal that will not be run; it no longer counts against the budget."""
    from loop.proposals import mark_proposal

    store = open_store(ctx)
    with store.session_scope() as session:
        p = mark_proposal(
            session=session, proposal_id=proposal_id, status="abandoned", reason=reason
        )
    typer.echo(f"proposal {p.id} abandoned")
