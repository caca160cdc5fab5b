"""The root `loop` app: global options and the top-level loop commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from loop.cli import benchmark as benchmark_cmd
from loop.cli import campaign as campaign_cmd
from loop.cli import dbcmd, proposal
from loop.cli import surrogate as surrogate_cmd
from loop.cli.common import LoopGroup, Settings, console, emit_json, fmt, open_store

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


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


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
    from loop.status import proposal_dict

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
        emit_json(
            {
                "campaign": res.campaign,
                "batch": res.batch,
                "strategy": res.strategy,
                "model_fit": None
                if res.model_fit is None
                else {
                    "id": res.model_fit.id,
                    "kind": res.model_fit.kind,
                    "reused": res.fit_reused,
                    "metrics": res.model_fit.metrics,
                },
                "seconds": round(res.seconds, 3),
                "notes": res.notes,
                "proposals": [proposal_dict(p) for p in res.proposals],
            }
        )
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
            _params_text(p.params),
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
        emit_json(
            {
                "source": res.source,
                "rows": res.rows,
                "stored": res.stored,
                "already_stored": res.already,
                "measurement_ids": res.measurement_ids,
            }
        )
        return
    typer.echo(f"{res.source}: {res.rows} rows, {res.stored} stored, {res.already} already stored")


@app.command()
def status(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Counts by status, best so far and the last model fit."""
    from loop.status import campaign_status

    store = open_store(ctx)
    with store.session_scope() as session:
        st = campaign_status(session=session, name=campaign)
    if as_json:
        emit_json(st)
        return
    from rich.table import Table

    out = console()
    b = st["budget"]
    out.print(
        f"[bold]{st['campaign']}[/bold] ({st['status']}, spec v{st['spec_version']}, "
        f"{st['space']}{'' if st['candidates'] is None else ' of ' + str(st['candidates'])})"
        f": budget {b['used']}/{b['total']} used, {st['measurements']} measurements"
    )
    t = Table(title="proposals")
    for s in st["proposals"]:
        t.add_column(s, justify="right")
    t.add_row(*[str(v) for v in st["proposals"].values()])
    out.print(t)
    for oname, best in st["best"].items():
        out.print(
            f"best {oname} ({best['direction']}): {fmt(best['value'])} at "
            f"{_params_text(best['params'])} (measurement {best['measurement']})"
        )
    if not st["best"]:
        out.print("no measurements yet")
    if st["stop"] is not None:
        s = st["stop"]
        out.print(
            f"stop target {s['objective']} {fmt(s['target'])}: "
            f"{'reached' if s['reached'] else 'not reached'}"
        )
    fit = st["last_fit"]
    if fit is None:
        out.print("no model fit yet")
    else:
        parts = [
            f"{k}: rmse {fmt(v['rmse'])}, r2 {fmt(v['r2'])}, 90% coverage {fmt(v['coverage90'])}"
            for k, v in fit["metrics"].items()
            if isinstance(v, dict)
        ]
        out.print(
            f"last fit {fit['id']} ({fit['kind']}, {fit['created_at'][:19]}): " + "; ".join(parts)
        )


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


def main() -> None:
    """Console-script entry point."""
    app()
