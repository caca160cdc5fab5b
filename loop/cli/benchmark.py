"""`loop benchmark ...`: replay real data sets and score planners on them."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import typer

from loop.cli.common import LoopGroup, emit_json

app = typer.Typer(
    cls=LoopGroup,
    no_args_is_help=True,
    help="Closed-loop benchmarks on real data sets, side by side with peers.",
)

DEFAULT_STRATEGIES = "random,default,gp-qlognei"


def _write(doc: dict[str, Any], out: Path, as_json: bool) -> None:
    from loop.benchmark.report import markdown, plot, summarize

    out.mkdir(parents=True, exist_ok=True)
    summaries = summarize(doc)
    (out / "results.json").write_text(json.dumps(doc))
    text = markdown(doc, summaries)
    (out / "results.md").write_text(text)
    (out / "summary.json").write_text(json.dumps([s.to_json() for s in summaries], indent=2))
    pngs = plot(doc, summaries, out)
    if as_json:
        emit_json([s.to_json() for s in summaries])
        return
    typer.echo(text)
    files = ", ".join(str(p) for p in [out / "results.md", out / "results.json", *pngs])
    typer.echo(f"wrote {files}")


@app.command("campaign")
def campaign(
    specs: list[Path] = typer.Argument(
        ..., help="Data set specs (.toml) or Olympus data set folders (config.json + data.csv)."
    ),
    strategies: str = typer.Option(
        DEFAULT_STRATEGIES,
        "--strategies",
        "-s",
        help="Comma-separated: random, default (the campaign default), gp-qlognei, gp-qlogei, "
        "gp-qucb (beta 1), gp-qucb-b2 (beta 2), baybe, ax.",
    ),
    seeds: int = typer.Option(20, help="Seeds per strategy and data set."),
    seed0: int = typer.Option(0, "--first-seed", help="The first seed."),
    batch_size: list[int] = typer.Option(
        [1], "--batch-size", "-q", help="Batch size; repeat to compare (e.g. -q 1 -q 4)."
    ),
    initial: int = typer.Option(2, "--initial", help="Random initial experiments per seed."),
    target: float = typer.Option(0.05, help="Targets: this top fraction of the pool."),
    stop_found: float = typer.Option(
        0.8, help="Stop a seed once this fraction of the targets is found."
    ),
    max_fraction: float = typer.Option(
        0.5, help="Stop a seed once this fraction of the pool is spent."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes (one seed each)."),
    peer_python: str | None = typer.Option(
        None,
        help="Python that runs the peers (a virtual environment with baybe / ax-platform); "
        "default: this one.",
    ),
    out: Path = typer.Option(Path("benchmark-results"), "--out", "-o", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run strategies on data sets for many seeds; write results.md, results.json and plots.

    Scores (Liang et al. 2021): Top% (fraction of the top-5% found), enhancement factor against
    analytic random search, acceleration factor at 50% and 80%, experiments to the first top-1%
    hit, each with 95% confidence intervals over seeds, and proposals per second.
    """
    from loop.benchmark.dataset import load_dataset
    from loop.benchmark.runner import Protocol, RunRecord, resolve_strategies, run_benchmark
    from loop.errors import LoopError

    names = [s.strip() for s in strategies.split(",") if s.strip()]
    strats = resolve_strategies(names, sorted(set(batch_size)))
    if any(q < 1 for q in batch_size):
        raise LoopError(
            f"--batch-size must be at least 1, got {min(batch_size)}", "use -q 1 or -q 4"
        )
    for s in specs:
        load_dataset(s)  # every spec and table is checked before anything runs
    protocol = Protocol(
        seeds=seeds,
        n_initial=initial,
        target_fraction=target,
        stop_found=stop_found,
        max_fraction=max_fraction,
        seed0=seed0,
    )
    protocol.check()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    warnings.filterwarnings("ignore")  # GPyTorch jitter notes would bury the progress bar
    t0 = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=None if not as_json else _stderr_console(),
        transient=as_json,
    ) as bar:
        task = bar.add_task("seeds", total=None)

        def progress(done: int, total: int, rec: RunRecord) -> None:
            if not bar.console.is_terminal:  # a log file gets one line per finished seed
                print(
                    f"[{done}/{total}] {rec.dataset} {rec.label} seed {rec.seed}: "
                    f"{len(rec.order)} experiments ({rec.stopped}), {rec.wall_seconds:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"{rec.dataset} {rec.label} seed {rec.seed}",
            )

        doc = run_benchmark(
            [str(s) for s in specs],
            strats,
            protocol,
            jobs=jobs,
            peer_python=peer_python,
            progress=progress,
        )
    doc["command"] = " ".join(["loop", *sys.argv[1:]]) if sys.argv else ""
    doc["wall_seconds"] = round(time.perf_counter() - t0, 2)
    _write(doc, out, as_json)


def _stderr_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=sys.stderr)


@app.command("report")
def report(
    results: list[Path] = typer.Argument(..., help="results.json files to merge."),
    out: Path = typer.Option(Path("benchmark-results"), "--out", "-o", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Rebuild the table and plots from saved results (several runs are merged)."""
    from loop.benchmark.report import load_results, merge_results

    doc = merge_results([load_results(p) for p in results])
    _write(doc, out, as_json)
