"""The root `loop` app: global options and the top-level loop commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from loop.cli import benchmark as benchmark_cmd
from loop.cli import campaign as campaign_cmd
from loop.cli import dbcmd, proposal, service
from loop.cli import simulate as simulate_cmd
from loop.cli import surrogate as surrogate_cmd
from loop.cli.common import (
    LoopGroup,
    Settings,
    console,
    emit_json,
    open_store,
    params_text,
)
from loop.errors import LoopError

app = typer.Typer(
    cls=LoopGroup,
    no_args_is_help=True,
    add_completion=False,
    help="Active-learning, closed-loop experiment planner for materials science.",
    pretty_exceptions_enable=False,
)
app.add_typer(campaign_cmd.app, name="campaign")
app.add_typer(proposal.app, name="proposal")
app.add_typer(dbcmd.app, name="db")
app.add_typer(benchmark_cmd.app, name="benchmark")
app.add_typer(surrogate_cmd.app, name="surrogate")
app.add_typer(simulate_cmd.app, name="simulate")


@app.callback()
def root(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None,
        "--db",
        envvar="LOOP_DATABASE_URL",
        help="Database URL or SQLite file (default: loop.db in the working directory).",
    ),
    artifacts: Path | None = typer.Option(
        None,
        "--artifacts",
        envvar="LOOP_ARTIFACT_DIR",
        help="Directory for model checkpoints (default: beside the SQLite file).",
    ),
) -> None:
    ctx.obj = Settings(db, artifacts)


@app.command()
def propose(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    n: int | None = typer.Option(None, "-n", "--n", help="Batch size (default: the spec's)."),
    seed: int | None = typer.Option(None, help="Seed (default: derived from the name)."),
    device: str | None = typer.Option(
        None, "--device", help="Where neural surrogates train: cpu or cuda (default: CUDA if any)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Propose the next batch of experiments."""
    from loop.engine import propose as _propose
    from loop.status import propose_dict

    store = open_store(ctx)
    with store.session_scope() as session:
        res = _propose(
            session=session,
            name=campaign,
            n=n,
            seed=seed,
            artifact_dir=store.artifact_dir,
            device=device,
        )
    if as_json:
        emit_json(propose_dict(res))
        return
    from rich.table import Table

    t = Table(title=f"{campaign}: batch {res.batch} ({res.strategy})")
    t.add_column("id", justify="right")
    t.add_column("parameters")
    t.add_column("predicted", justify="right")
    t.add_column("acq", justify="right")
    for p in res.proposals:
        pred = "; ".join(f"{k} {v['mean']:.4g} ± {v['std']:.2g}" for k, v in p.predictions.items())
        t.add_row(
            str(p.id),
            params_text(p.params),
            pred or "-",
            "-" if p.acq_value is None else f"{p.acq_value:.3g}",
        )
    out = console()
    out.print(t)
    for note in res.notes:
        out.print(f"note: {note}")
    if res.model_fit is not None:
        out.print(
            f"model fit {res.model_fit.id} ({res.model_fit.kind}"
            f"{', reused' if res.fit_reused else ''}) in {res.seconds:.2f} s"
        )


@app.command()
def ingest(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    path: str = typer.Argument(..., help="CSV or JSONL file of results, or '-' for stdin."),
    fmt_: str | None = typer.Option(None, "--format", help="csv or jsonl (default: guess)."),
    source: str = typer.Option("experiment", help="Source of rows without a source column."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Store measurements from a file or stdin, all rows or none."""
    from loop.errors import IngestError
    from loop.ingest import ingest as _ingest
    from loop.status import ingest_dict

    if fmt_ not in (None, "csv", "jsonl"):
        raise IngestError(f"--format {fmt_!r} is not known", "use csv or jsonl")
    text = sys.stdin.read() if path == "-" else None
    store = open_store(ctx)
    with store.session_scope() as session:
        res = _ingest(
            session=session,
            name=campaign,
            path=path,
            text=text,
            fmt=fmt_,  # type: ignore[arg-type]
            default_source=source,
        )
    if as_json:
        emit_json(ingest_dict(res))
        return
    typer.echo(f"{res.source}: {res.rows} rows, {res.stored} stored, {res.already} already stored")


@app.command()
def status(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until interrupted."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes."),
    times: int | None = typer.Option(
        None, "--times", help="With --watch: stop after this many refreshes."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Counts by status, best so far, the last model fit and running jobs with their leases."""
    from loop.cli.statusview import status_view
    from loop.status import campaign_status

    store = open_store(ctx)

    def read() -> dict:
        with store.session_scope() as session:
            return campaign_status(session=session, name=campaign)

    st = read()
    if as_json:
        emit_json(st)
        return
    if not watch:
        console().print(status_view(st))
        return
    import time

    from rich.live import Live

    if interval <= 0:
        raise LoopError(f"--interval {interval} must be positive", "give seconds, e.g. 2")
    shown = 1
    with Live(status_view(st), console=console(), auto_refresh=False) as live:
        try:
            while times is None or shown < times:
                time.sleep(interval)
                live.update(status_view(read()), refresh=True)
                shown += 1
        except KeyboardInterrupt:
            pass


@app.command()
def export(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
    as_json: bool = typer.Option(False, "--json", help="JSON rows instead of CSV."),
) -> None:
    """Every measurement with its proposal and provenance, as CSV (or JSON)."""
    from loop.export import export_rows, rows_to_csv

    store = open_store(ctx)
    with store.session_scope() as session:
        cols, rows = export_rows(session=session, name=campaign)
    if as_json:
        import json

        text = json.dumps(rows, indent=2) + "\n"
    else:
        text = rows_to_csv(cols, rows)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(rows)} measurements to {output}", err=True)


@app.command()
def report(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="HTML file to write (self-contained); default report.html, none with --json.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report's numbers as JSON (and write HTML only with -o)."
    ),
) -> None:
    """A self-contained HTML report of a campaign (figures embedded), built from the store."""
    from loop.report import build_report, load_context

    store = open_store(ctx)
    with store.session_scope() as session:
        rc = load_context(session=session, name=campaign, artifact_dir=store.artifact_dir)
    doc, page = build_report(rc)
    if output is None and not as_json:
        output = Path("report.html")
    if output is not None:
        output.write_text(page, encoding="utf-8")
    if as_json:
        emit_json(doc)
        return
    assert output is not None
    typer.echo(
        f"wrote {output} ({len(page) // 1024} KiB, {len(doc['sections'])} sections, "
        f"{doc['seconds']:.1f} s)"
    )


@app.command()
def demo(
    ctx: typer.Context,
    rounds: int = typer.Option(6, help="Model-based rounds after the initial design."),
    batch: int = typer.Option(4, help="Experiments per round."),
    seed: int = typer.Option(0, help="Seed of the planner and the oracle."),
    name: str = typer.Option("demo-p3ht", help="Campaign name (a suffix is added if taken)."),
) -> None:
    """A short closed loop on the shipped P3HT data set, with the data as the oracle."""
    from loop.demo import run_demo

    store = open_store(ctx)
    run_demo(store, name=name, rounds=rounds, batch=batch, seed=seed, echo=typer.echo)


app.command()(service.serve)
app.command()(service.worker)
app.command()(service.run)
app.add_typer(service.token_app, name="token")


def main() -> None:
    """Console-script entry point."""
    app()
