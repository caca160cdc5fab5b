"""`loop campaign ...`: create, list, show, update, export and import campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from loop.cli.common import LoopGroup, console, emit_json, fmt, open_store
from loop.errors import LoopError

app = typer.Typer(cls=LoopGroup, no_args_is_help=True, help="Create and manage campaigns.")


@app.command()
def create(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="Campaign spec (TOML)."),
    name: str | None = typer.Option(None, help="Store under this name instead of the spec's."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Create a campaign from a TOML spec."""
    from loop.campaigns import create_campaign

    store = open_store(ctx)
    with store.session_scope() as session:
        rec = create_campaign(session=session, path=spec, name=name)
        from db import crud

        n = crud.count_candidates(session=session, campaign_id=rec.id)
    if as_json:
        emit_json({"name": rec.name, "id": rec.id, "candidates": n, "spec": rec.spec})
        return
    extra = f" with a pool of {n} candidates" if n else ""
    typer.echo(f"created campaign '{rec.name}'{extra}")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """List campaigns."""
    from db import crud

    store = open_store(ctx)
    with store.session_scope() as session:
        rows = []
        for c in crud.list_campaigns(session=session):
            counts = crud.count_proposals_by_status(session=session, campaign_id=c.id)
            rows.append(
                {
                    "name": c.name,
                    "status": c.status,
                    "spec_version": c.spec_version,
                    "budget": c.spec.get("budget"),
                    "used": sum(v for k, v in counts.items() if k != "abandoned"),
                    "measurements": crud.count_measurements(session=session, campaign_id=c.id),
                    "created_at": c.created_at.isoformat(),
                }
            )
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    t = Table(title="campaigns")
    for col in ("name", "status", "spec_version", "budget", "used", "measurements"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            *[
                str(r[c])
                for c in ("name", "status", "spec_version", "budget", "used", "measurements")
            ]
        )
    console().print(t if rows else "no campaigns yet: `loop campaign create SPEC.toml`")


@app.command()
def show(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    history: bool = typer.Option(False, "--history", help="Every spec version."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Show a campaign's spec (and its version history)."""
    from db import crud

    store = open_store(ctx)
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=campaign)
        hist = crud.spec_history(session=session, campaign_id=rec.id)
    data = {
        "name": rec.name,
        "status": rec.status,
        "spec_version": rec.spec_version,
        "spec": rec.spec,
    }
    if history:
        data["history"] = [
            {"version": h["version"], "note": h["note"], "created_at": h["created_at"]}
            for h in hist
        ]
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{rec.name}[/bold] ({rec.status}, spec v{rec.spec_version})")
    out.print_json(json.dumps(rec.spec))
    if history:
        for h in hist:
            out.print(f"v{h['version']} {h['created_at']:%Y-%m-%d %H:%M}: {h['note']}")


@app.command()
def update(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    budget: int | None = typer.Option(None, help="New budget (number of experiments)."),
    batch_size: int | None = typer.Option(None, help="New default batch size."),
    initial_design: int | None = typer.Option(None, help="New initial design size."),
    surrogate: str | None = typer.Option(None, help="Surrogate by name (e.g. gp)."),
    acquisition: str | None = typer.Option(None, help="Acquisition by name (e.g. qlognei)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Change the budget, batch size, surrogate or acquisition of a live campaign."""
    from loop.campaigns import update_campaign

    store = open_store(ctx)
    with store.session_scope() as session:
        rec = update_campaign(
            session=session,
            name=campaign,
            changes={
                "budget": budget,
                "batch_size": batch_size,
                "initial_design": initial_design,
                "surrogate": surrogate,
                "acquisition": acquisition,
            },
        )
    if as_json:
        emit_json({"name": rec.name, "spec_version": rec.spec_version, "spec": rec.spec})
        return
    typer.echo(f"campaign '{rec.name}' is now at spec v{rec.spec_version}")


@app.command("export")
def export_(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
) -> None:
    """Write the whole campaign (spec history, proposals, measurements, fits, events) as JSON."""
    from loop.bundle import export_bundle

    store = open_store(ctx)
    with store.session_scope() as session:
        bundle = export_bundle(session=session, name=campaign)
    text = json.dumps(bundle, indent=1, default=str) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(
            f"wrote campaign '{campaign}' to {output} ({len(bundle['measurements'])} "
            f"measurements, {len(bundle['proposals'])} proposals)",
            err=True,
        )


@app.command("import")
def import_(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="A bundle written by `loop campaign export`."),
    name: str | None = typer.Option(None, help="Import under this name."),
) -> None:
    """Import a campaign bundle into this store, whole or not at all."""
    from loop.bundle import import_bundle

    if not bundle.is_file():
        raise LoopError(f"{bundle}: no such file", "give the path of a bundle JSON file")
    try:
        data = json.loads(bundle.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LoopError(
            f"{bundle}: not a JSON bundle ({err})", "give a file written by `loop campaign export`"
        ) from None
    store = open_store(ctx)
    with store.session_scope() as session:
        target = import_bundle(session=session, bundle=data, name=name, source=str(bundle))
    typer.echo(f"imported campaign '{target}' ({len(data.get('measurements', []))} measurements)")


__all__ = ["app", "fmt"]
