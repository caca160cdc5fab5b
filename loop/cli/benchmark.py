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


@app.command("surrogate")
def surrogate(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="CSV file with a formula and a target column."),
    input_column: str = typer.Option("formula", "--input", help="The formula column."),
    target: str = typer.Option("target", "--target", help="The numeric target column."),
    models: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="Repeat to compare: mean, rf, or a surrogate family (gp, elemnet-ensemble, ...); "
        "FAMILY@LABEL runs a family again under other options (elemnet-ensemble@nll).",
    ),
    options: list[str] = typer.Option(
        [],
        "--option",
        help="MODEL:KEY=VALUE, repeatable (e.g. rf:n_estimators=200, gp:max_points=200).",
    ),
    split: str = typer.Option(
        "kfold", "--split", help="kfold, group-kfold (by reduced formula) or fixed."
    ),
    folds: int = typer.Option(5, "--folds", help="Folds of kfold and group-kfold."),
    folds_run: int | None = typer.Option(
        None, "--folds-run", help="Run only the first K folds (to fit a time budget)."
    ),
    fold: list[int] = typer.Option(
        [],
        "--fold",
        help="Run only fold N (from 1), repeatable: spreads one protocol's folds over runs "
        "that `loop benchmark surrogate-merge` joins.",
    ),
    split_seed: int = typer.Option(
        18012019, "--split-seed", help="Seed of the split (matbench's 18012019 by default)."
    ),
    test_fraction: float = typer.Option(
        0.2, "--test-fraction", help="Test share of --split fixed."
    ),
    test_data: Path | None = typer.Option(
        None, "--test-data", help="Train on --data, test on this file (same columns)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="Use a seeded random subset of N rows of each file."
    ),
    limit_seed: int = typer.Option(0, "--limit-seed", help="Seed of --limit."),
    train_size: int | None = typer.Option(
        None, "--train-size", help="Subsample each training fold to N rows (seeded)."
    ),
    drop_abs_above: float | None = typer.Option(
        None, "--drop-abs-above", help="Drop rows whose |target| exceeds this (and say how many)."
    ),
    skip_bad_rows: bool = typer.Option(
        False, "--skip-bad-rows", help="Drop bad rows (reporting them) instead of stopping."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the models and of --train-size."),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Warm-start the neural models from this stored model."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu or cuda (default: cuda when available)."
    ),
    out: Path = typer.Option(Path("surrogate-benchmark"), "--out", "-o", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the results JSON."),
) -> None:
    """Accuracy and uncertainty of surrogates on a composition or structure table, on identical
    splits. A table of crystal structures (a CSV with a CIF column, --input cif, or a JSON table
    of pymatgen structures) runs crystal-graph models (cgcnn-ensemble, cgcnn-mcdropout) on the
    structures and every other model on their compositions.

    Writes results.json, results.md, parity.png and calibration.png. Metrics per model and fold
    (mean ± std over folds): MAE, RMSE, R2, miscalibration area, Gaussian NLL, Spearman of
    |error| with sigma, 90% coverage, fit seconds and predictions per second.
    """
    import torch

    from loop.benchmark.surrogate import (
        SurrogateBenchmark,
        check_models,
        family_of,
        model_options,
        plan_splits,
        run_surrogate_benchmark,
    )
    from loop.benchmark.surrogate_data import load_composition_table
    from loop.benchmark.surrogate_report import surrogate_markdown, surrogate_plots
    from loop.errors import LoopError

    t0 = time.perf_counter()
    if split not in ("kfold", "group-kfold", "fixed"):
        raise LoopError(f"unknown --split '{split}'", "use kfold, group-kfold or fixed")
    if test_data is not None and split != "kfold":
        raise LoopError("--test-data replaces the split", "leave out --split with --test-data")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise LoopError(f"unknown --device '{device}'", "use cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LoopError("--device cuda, but torch sees no CUDA device", "use --device cpu")
    opts = model_options(options)
    check_models(list(models), opts)
    bench = SurrogateBenchmark(
        models=tuple(models),
        options=opts,
        split=split,  # type: ignore[arg-type]
        folds=folds,
        folds_run=folds_run,
        fold_numbers=tuple(fold) if fold else None,
        split_seed=split_seed,
        test_fraction=test_fraction,
        train_size=train_size,
        seed=seed,
        device=device,
        pretrained=pretrained,
    )
    from surrogates import SURROGATES, load_builtin

    load_builtin()
    structural = any(
        getattr(SURROGATES.get(family_of(m)), "needs_structures", False) for m in models
    ) or data.name.endswith((".json", ".json.gz"))
    if structural:
        from loop.benchmark.surrogate_data import load_structure_benchmark_table

        if test_data is not None:
            raise LoopError(
                "--test-data is for composition tables; structure tables are split",
                "use --split kfold or fixed on one structure file",
            )
        tables = [
            load_structure_benchmark_table(
                data,
                input_column="cif" if input_column == "formula" else input_column,
                target_column=target,
                limit=limit,
            )
        ]
    else:
        tables = [
            load_composition_table(
                path,
                input_column=input_column,
                target_column=target,
                skip_bad_rows=skip_bad_rows,
                drop_abs_above=drop_abs_above,
                limit=limit,
                limit_seed=limit_seed,
            )
            for path in ([data] if test_data is None else [data, test_data])
        ]
    plan_splits(bench, tables[0], tables[1] if len(tables) > 1 else None)  # refuse before fitting
    warm_start = _pretrained_state(ctx, pretrained) if pretrained else None

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with (
        warnings.catch_warnings(),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr_console() if as_json else None,
            transient=True,
        ) as bar,
    ):
        warnings.simplefilter("ignore")  # GPyTorch jitter notes would bury the progress bar
        task = bar.add_task("fits", total=None)
        started = time.perf_counter()

        def progress(done: int, total: int, label: str) -> None:
            if not bar.console.is_terminal:  # a log file gets one line per fit
                print(
                    f"[{done}/{total}] {label} ({time.perf_counter() - started:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            bar.update(task, completed=done, total=total, description=label)

        doc, first = run_surrogate_benchmark(
            bench,
            tables[0],
            test_data=tables[1] if len(tables) > 1 else None,
            warm_start=warm_start,
            progress=progress,
        )
    doc["command"] = " ".join(["loop", *sys.argv[1:]]) if sys.argv else ""
    doc["wall_seconds"] = round(time.perf_counter() - t0, 2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    (out / "results.md").write_text(surrogate_markdown(doc))
    pngs = surrogate_plots(first, out, tables[0].target_column)
    if as_json:
        emit_json(doc)
        return
    _print_surrogate_table(doc, data.name)
    files = ", ".join(str(p) for p in [out / "results.md", out / "results.json", *pngs])
    typer.echo(f"wrote {files} in {doc['wall_seconds']} s")


def _print_surrogate_table(doc: dict[str, Any], title: str) -> None:
    from rich.table import Table

    from loop.benchmark.surrogate_report import COLUMNS, budget_text, summary_rows
    from loop.cli.common import console

    table = Table(title=f"{title}: mean ± std over folds {[f + 1 for f in doc['folds_run']]}")
    shown = [(h, k) for h, k in COLUMNS if k not in ("hardware", "budget")]
    for header, key in shown:
        table.add_column(header, justify="left" if key == "model" else "right")
    for row in summary_rows(doc):
        table.add_row(row["name"], *(row[k] for _, k in shown[1:]))
    con = console()
    con.print(table)
    for name, r in doc["models"].items():
        if r["options"]:
            con.print(f"{name} options: {r['options']}")
    con.print(f"hardware: {doc['hardware']['summary']}; budget: {budget_text(doc)}")


@app.command("surrogate-merge")
def surrogate_merge(
    files: list[Path] = typer.Argument(
        ..., help="results.json files of `loop benchmark surrogate` runs over different folds."
    ),
    out: Path = typer.Option(Path("surrogate-benchmark"), "--out", "-o", help="Output folder."),
    model: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="Merge only this model (repeatable); every run must hold it. Default: all, and "
        "every run must hold the same models.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results JSON."),
) -> None:
    """Join runs of one protocol over different folds (`--fold`) into one results.json and
    results.md, as one run over all their folds would write them (plots stay with each run).

    The runs must share the data (by checksum), split, models, options and seeds; each fold
    may come from one run only. Each fold keeps the hardware it ran on. With `--model`, only
    the named models are merged and must match; the runs may differ in the others (a baseline
    run on one fold only), and the merge lists what it left out of each run.
    """
    from loop.benchmark.report import load_results
    from loop.benchmark.surrogate import RESULTS_FORMAT, merge_results
    from loop.benchmark.surrogate_report import surrogate_markdown

    runs = [(str(p), load_results(p, RESULTS_FORMAT, "loop benchmark surrogate")) for p in files]
    doc = merge_results(runs, model or None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    (out / "results.md").write_text(surrogate_markdown(doc))
    if as_json:
        emit_json(doc)
        return
    _print_surrogate_table(doc, Path(doc["data"]["path"]).name)
    typer.echo(f"wrote {out / 'results.md'}, {out / 'results.json'}")


def _pretrained_state(ctx: typer.Context, name: str) -> dict[str, Any]:
    from loop.errors import LoopError

    try:
        from loop.pretrained import load_pretrained_state  # type: ignore[import-not-found]
    except ImportError as err:
        raise LoopError(
            f"--pretrained {name}: pretrained models are not available in this build ({err})",
            "leave out --pretrained",
        ) from None
    from loop.cli.common import open_store

    store = open_store(ctx)
    with store.session_scope() as session:
        return load_pretrained_state(session=session, name=name)


@app.command("screen")
def screen(
    model: list[str] = typer.Option(
        ["elemnet-ensemble"], "--model", "-m", help="Surrogate(s) to time (repeatable)."
    ),
    option: list[str] = typer.Option(
        [], "--option", help="MODEL:KEY=VALUE surrogate option (repeatable), e.g. size=full."
    ),
    elements: str = typer.Option(
        "Li,Na,Mg,Fe,Mn,Ni,Co,Ti,O,F,P,S",
        "--elements",
        help="Comma-separated elements of the chemical space to enumerate.",
    ),
    pool: int = typer.Option(100_000, "--pool", help="Compositions to score."),
    max_components: int = typer.Option(4, "--max-components", help="Most elements present."),
    step: float = typer.Option(0.05, "--step", help="Fraction grid step."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: CUDA if any)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Time the posterior mean and sigma of surrogates over a composition pool."""
    from dataclasses import asdict

    from loop.benchmark.screening import screening_throughput
    from loop.benchmark.surrogate import check_models, family_of, model_options
    from loop.errors import LoopError

    opts = model_options(option)
    check_models(model, opts)
    baselines = [m for m in model if m in ("mean", "rf")]
    if baselines:
        raise LoopError(
            f"screening times surrogates that score a pool; {baselines} are benchmark baselines",
            "use a surrogate such as elemnet-ensemble or elemnet-dropout",
        )
    els = [e.strip() for e in elements.split(",") if e.strip()]
    rows = []
    for name in model:
        try:
            res = screening_throughput(
                family_of(name),
                opts.get(name, {}),
                elements=els,
                pool_size=pool,
                max_components=max_components,
                step=step,
                device=device,
            )
        except ValueError as err:
            raise LoopError(str(err), "change --elements, --step or --pool") from None
        rows.append(asdict(res))
        if not as_json:
            typer.echo(
                f"{name} {opts.get(name) or ''}: {res.pool:,} compositions in "
                f"{res.predict_seconds} s = {res.per_second:,.0f}/s ({res.members} members: "
                f"{res.per_member_per_second:,.0f} member-predictions/s; {res.parameters:,} "
                f"weights; featurized in {res.featurize_seconds} s) on {res.hardware}"
            )
    if as_json:
        emit_json(rows)


def _int_list(text: str, flag: str) -> list[int]:
    from loop.errors import LoopError

    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise LoopError(
            f"{flag} must be comma-separated whole numbers, got {text!r}", f"e.g. {flag} 1000,10000"
        ) from None
    if not values or min(values) < 1:
        raise LoopError(f"{flag} needs numbers of at least 1, got {text!r}", f"e.g. {flag} 1,8")
    return values


@app.command("propose")
def propose_bench(
    space: str = typer.Option(
        "composition",
        "--space",
        help="composition (86 element fractions, OQMD measurements) or box (Hartmann-6).",
    ),
    surrogate: str = typer.Option("ensemble", "--surrogate", "-m", help="Surrogate family."),
    option: list[str] = typer.Option(
        [], "--option", help="KEY=VALUE surrogate option (repeatable), e.g. members=5."
    ),
    acquisition: str = typer.Option("qlognei", "--acquisition", "-a", help="Acquisition name."),
    pools: str = typer.Option("1000,10000,100000", "--pools", help="Pool sizes."),
    batches: str = typer.Option("1,8,32", "--batches", help="Batch sizes q."),
    histories: str = typer.Option("100", "--measurements", help="Measurement counts n."),
    botorch_max_pool: int = typer.Option(
        100_000, "--botorch-max-pool", help="Run optimize_acqf_discrete up to this pool size."
    ),
    botorch_max_q: int = typer.Option(
        8, "--botorch-max-q", help="Run optimize_acqf_discrete up to this batch size."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Composition space: formula,target CSV of measurements (OQMD)."
    ),
    continuous: bool = typer.Option(
        False,
        "--continuous",
        help="Time the 6-d continuous box (no pool): fit and gradient search, as loop propose.",
    ),
    repeats: int = typer.Option(5, "--repeats", help="Continuous rounds per setting (medians)."),
    seed: int = typer.Option(0, "--seed"),
    out: Path | None = typer.Option(None, "--out", help="Write results.json and results.md."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Latency of one proposal round against pool size, batch size and history, next to
    BoTorch's optimize_acqf_discrete on the same acquisition in the same run."""
    from dataclasses import asdict

    from acquisition import check_acquisition
    from loop.benchmark.propose import SPACES, describe, propose_latency
    from loop.benchmark.surrogate import hardware, model_options
    from loop.errors import LoopError

    if space not in SPACES:
        raise LoopError(f"unknown --space {space!r}", f"use one of: {', '.join(SPACES)}")
    if space == "composition" and data is None:
        raise LoopError(
            "--space composition needs --data, the measurements' formula,target CSV",
            "e.g. --data ../shared/data/composition/oqmd_formation_enthalpy/val.csv",
        )
    try:
        check_acquisition(acquisition)
    except ValueError as err:
        raise LoopError(str(err), "pick one of the names listed") from None
    opts = model_options([f"{surrogate}:{o}" for o in option]).get(surrogate, {})
    from surrogates import UnknownSurrogateError, load_builtin, make_surrogate

    load_builtin()
    try:
        make_surrogate(surrogate, opts)
    except UnknownSurrogateError as err:
        raise LoopError(str(err), "fix --surrogate or --option") from None

    if continuous:
        from loop.benchmark.propose import continuous_latency

        crow = continuous_latency(
            surrogate=surrogate,
            options=opts,
            acquisition=acquisition,
            batches=_int_list(batches, "--batches"),
            histories=_int_list(histories, "--measurements"),
            repeats=repeats,
            seed=seed,
        )
        cdoc = {
            "command": " ".join(["loop", *sys.argv[1:]]) if sys.argv else "",
            "hardware": hardware("cpu"),
            "continuous": [asdict(r) for r in crow],
        }
        for r in crow:
            if not as_json:
                typer.echo(
                    f"continuous d={r.d} {r.surrogate} {r.acquisition} n={r.n} q={r.q}: fit "
                    f"{r.fit_seconds} s + search {r.select_seconds} s = {r.round_seconds} s "
                    f"(medians of {r.repeats})"
                )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(cdoc, indent=1))
        if as_json:
            emit_json(cdoc)
        return

    def progress(row: Any) -> None:
        if not as_json:
            typer.echo(describe([row]))

    t0 = time.perf_counter()
    try:
        rows = propose_latency(
            space=space,
            surrogate=surrogate,
            options=opts,
            acquisition=acquisition,
            pools=_int_list(pools, "--pools"),
            batches=_int_list(batches, "--batches"),
            histories=_int_list(histories, "--measurements"),
            botorch_max_pool=botorch_max_pool,
            botorch_max_q=botorch_max_q,
            data=data,
            seed=seed,
            progress=progress,
        )
    except ValueError as err:
        raise LoopError(str(err), "use smaller --pools or other --measurements") from None
    doc = {
        "command": " ".join(["loop", *sys.argv[1:]]) if sys.argv else "",
        "hardware": hardware("cpu"),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": [asdict(r) for r in rows],
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(doc, indent=1))
        (out / "results.md").write_text(_propose_markdown(doc))
    if as_json:
        emit_json(doc)


def _propose_markdown(doc: dict[str, Any]) -> str:
    head = (
        "| space | surrogate | acquisition | n | pool | q | fit s | warm refit s | select s |"
        " optimize_acqf_discrete s | speed-up | same batch | scored | peak MB |\n|" + "---|" * 14
    )
    lines = [f"`{doc['command']}` on {doc['hardware']['summary']}", "", head]
    for r in doc["rows"]:
        cells = [
            r["space"], r["surrogate"], r["acquisition"], r["n"], f"{r['pool']:,}", r["q"],
            r["fit_seconds"], "-" if r.get("warm_fit_seconds") is None else r["warm_fit_seconds"],
            r["select_seconds"],
            "-" if r["botorch_seconds"] is None else r["botorch_seconds"],
            "-" if r["speedup"] is None else f"{r['speedup']}x",
            "-" if r["same_batch"] is None else ("yes" if r["same_batch"] else
            f"no ({r.get('batch_value')} vs {r.get('botorch_batch_value')})"),
            f"{r['scored']:,}", f"{r['max_rss_mb']:.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


@app.command("service")
def service_bench(
    jobs: int = typer.Option(200, "--jobs", help="Jobs per queue run (at most 600)."),
    workers: str = typer.Option("1,2,4,8", "--workers", help="Worker process counts."),
    rounds: int = typer.Option(100, "--rounds", help="Round trips per operation."),
    postgres: str | None = typer.Option(
        None, "--postgres", help="Also run on this PostgreSQL database (it gains campaigns)."
    ),
    out: Path = typer.Option(Path("benchmark-results/service"), "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Job-queue throughput (worker processes vs in-process ingest) and HTTP round trips
    (LoopClient vs in-process calls), on SQLite and optionally PostgreSQL."""
    import os

    from loop.benchmark.service import queue_throughput, round_trips, temporary_sqlite
    from loop.errors import LoopError

    if not 1 <= jobs <= 600:
        raise LoopError(f"--jobs {jobs} is out of range", "the crossed-barrel pool has 600 designs")
    counts = _int_list(workers, "--workers")
    stores: list[tuple[str, str, Path]] = []
    url, art = temporary_sqlite()
    stores.append(("sqlite", url, art))
    if postgres:
        from db import resolve_url

        stores.append(("postgresql", resolve_url(postgres), art.parent / "pg-artifacts"))
    doc: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "jobs": jobs,
        "rounds": rounds,
        "queue": [],
        "round_trips": [],
    }
    for label, db_url, db_art in stores:
        for row in queue_throughput(db_url, db_art, jobs=jobs, workers=counts):
            doc["queue"].append({"store": label, **row})
        for row in round_trips(db_url, db_art, rounds=rounds):
            doc["round_trips"].append({"store": label, **row})
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    lines = [
        f"Queue: {jobs} jobs (crossed-barrel, data-set oracle), {os.cpu_count()} CPU cores",
        "",
        "| store | mode | workers | seconds | jobs/s |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in doc["queue"]:
        lines.append(
            f"| {r['store']} | {r['mode']} | {r['workers']} | {r['seconds']:.2f} | "
            f"{r['jobs_per_second']:.0f} |"
        )
    lines += [
        "",
        f"Round trips ({rounds} each; HTTP = LoopClient to uvicorn on this machine)",
        "",
        "| store | operation | via | median ms | p95 ms |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in doc["round_trips"]:
        lines.append(
            f"| {r['store']} | {r['operation']} | {r['via']} | {r['median_ms']:.1f} | "
            f"{r['p95_ms']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    if as_json:
        emit_json(doc)
    else:
        typer.echo(text)
        typer.echo(f"wrote {out / 'results.md'}, {out / 'results.json'}")


@app.command("report-time")
def report_bench(
    measurements: str = typer.Option("500,5000", "--measurements", help="Campaign sizes."),
    surrogate: str = typer.Option("ensemble", "--surrogate", help="Surrogate of the fits."),
    rounds: int = typer.Option(2, "--rounds", help="Model-based batches of 8 before the report."),
    out: Path = typer.Option(Path("benchmark-results/report"), "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Time `loop report` on Hartmann-6 campaigns of the given sizes (per section, and the
    whole command in a fresh process)."""
    from loop.benchmark.report_speed import report_timing

    rows = [
        report_timing(n, rounds=rounds, surrogate=surrogate)
        for n in _int_list(measurements, "--measurements")
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    names = list(rows[0]["section_seconds"])
    lines = [
        "| measurements | fits | " + " | ".join(names) + " | in-process total | `loop report` |",
        "| ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['measurements']} | {r['fits']} | "
            + " | ".join(f"{r['section_seconds'].get(n, 0):.2f}" for n in names)
            + f" | {r['in_process_seconds']:.2f} | {r['cli_seconds']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    if as_json:
        emit_json(rows)
    else:
        typer.echo(text)


@app.command("structures")
def structures_bench(
    data: list[Path] = typer.Argument(..., help="CSV files with a CIF column (perov_5)."),
    cif: str = typer.Option("cif", "--cif", help="Column holding the CIF text."),
    target: str = typer.Option("heat_all", "--target", help="Column to predict."),
    members: int = typer.Option(3, "--members", help="Ensemble members."),
    budget: float = typer.Option(240.0, "--budget", help="Training seconds per CGCNN member."),
    epochs: int = typer.Option(300, "--epochs", help="Epoch limit per member."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the members."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N rows."),
    elemnet: bool = typer.Option(True, "--elemnet/--no-elemnet", help="Run the ElemNet peer."),
    folds: int | None = typer.Option(
        None, "--folds", help="K-fold cross-validation instead of one 80/20 split."
    ),
    lr: float = typer.Option(1e-3, "--lr", help="CGCNN learning rate."),
    batch_size: int = typer.Option(64, "--batch-size", help="CGCNN mini-batch size."),
    schedule: str = typer.Option(
        "plateau",
        "--schedule",
        help="plateau, budget (linear decay over --budget) or linear (over --epochs).",
    ),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw, or sgd (momentum 0.9)."),
    out: Path = typer.Option(Path("benchmark-results/structures"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """CGCNN ensemble on crystal structures next to ElemNet (composition only), one split."""
    from loop.benchmark.structures import run_structure_benchmark
    from loop.errors import LoopError

    if members < 1 or budget <= 0 or epochs < 1:
        raise LoopError("--members, --budget and --epochs must be positive", "e.g. 3, 240, 300")
    from surrogates.training import TrainConfig

    training = {"lr": lr, "batch_size": batch_size, "schedule": schedule, "optimizer": optimizer}
    try:
        TrainConfig(time_budget=budget, **training)  # type: ignore[arg-type]
    except ValueError as err:
        raise LoopError(
            f"CGCNN training: {err}", "see `loop benchmark structures --help`"
        ) from None
    doc = run_structure_benchmark(
        data,
        cif=cif,
        target=target,
        members=members,
        budget=budget,
        epochs=epochs,
        seed=seed,
        limit=limit,
        elemnet=elemnet,
        folds=folds,
        training=training,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=float))
    lines = [
        f"{doc['rows']} rows ({doc['split']}; {doc['train']} train rows per fit), target "
        f"{doc['target']}, {members} members, {budget:g} s per CGCNN member",
        "",
        "| model | MAE | MAE per fold | RMSE | R2 | 90% coverage | miscal. area | fit s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in doc["models"].items():
        per_fold = (
            f"{m['fold_mae_mean']:.4f} +- {m['fold_mae_std']:.4f}" if "fold_mae_mean" in m else "-"
        )
        lines.append(
            f"| {name} | {m['mae']:.4f} | {per_fold} | {m['rmse']:.4f} | {m['r2']:.3f} | "
            f"{m['cov90']:.3f} | {m['miscal_area']:.3f} | {m['fit_seconds']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    if as_json:
        emit_json(doc)
    else:
        typer.echo(text)


@app.command("structure-loop")
def structure_loop_bench(
    data: list[Path] = typer.Argument(..., help="CSV files with a CIF column (perov_5)."),
    cif: str = typer.Option("cif", "--cif", help="Column holding the CIF text."),
    target: str = typer.Option("heat_all", "--target", help="Column the oracle answers with."),
    direction: str = typer.Option("minimize", "--direction", help="minimize or maximize."),
    strategies: str = typer.Option(
        "cgcnn-ensemble,elemnet-ensemble,random",
        "--strategies",
        help="Comma-separated: cgcnn-ensemble, cgcnn-mcdropout, elemnet-ensemble, random.",
    ),
    seeds: int = typer.Option(10, "--seeds", help="Seeds (initial designs) per planner."),
    batch: int = typer.Option(8, "--batch", help="Proposals per round."),
    initial: int = typer.Option(10, "--initial", help="Random initial structures."),
    top: float = typer.Option(0.01, "--top", help="Fraction of the pool that counts as top."),
    need: int = typer.Option(1, "--need", help="Top structures to find."),
    max_experiments: int = typer.Option(300, "--max-experiments", help="Give up after this."),
    members: int = typer.Option(5, "--members", help="Ensemble members (CGCNN and ElemNet)."),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epoch limit of every fit (default: the surrogates' own, 300)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N rows."),
    pretrain: list[Path] = typer.Option(
        [], "--pretrain", help="Pretrain every network on this table first (repeatable)."
    ),
    pretrain_budget: float = typer.Option(
        600.0, "--pretrain-budget", help="Seconds of pretraining per network planner."
    ),
    out: Path = typer.Option(Path("benchmark-results/structure-loop"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Replay a closed loop over a structure pool: experiments until a top structure is found,
    CGCNN next to ElemNet and random, over seeds."""
    import shlex

    from loop.benchmark.structure_loop import (
        plot_structure_loop,
        run_structure_loop,
        structure_loop_markdown,
    )
    from loop.errors import LoopError

    if min(seeds, batch, initial, need, members) < 1 or not 0 < top < 1:
        raise LoopError(
            "--seeds, --batch, --initial, --need and --members must be >= 1, --top in (0, 1)",
            "e.g. --seeds 10 --batch 8 --initial 10 --top 0.01",
        )

    def progress(run: dict[str, Any]) -> None:
        if not as_json:
            typer.echo(
                f"seed {run['seed']} {run['strategy']}: "
                f"{run['experiments'] if run['experiments'] is not None else 'miss'} experiments "
                f"({run['seconds']:.0f} s)",
                err=True,
            )

    ep = {"epochs": epochs} if epochs is not None else {}
    doc = run_structure_loop(
        data,
        cif=cif,
        target=target,
        direction=direction,
        strategies=[s.strip() for s in strategies.split(",") if s.strip()],
        seeds=seeds,
        batch=batch,
        n_initial=initial,
        top=top,
        need=need,
        max_experiments=max_experiments,
        limit=limit,
        options={
            name: {**({"members": members} if "ensemble" in name else {}), **ep}
            for name in ("cgcnn-ensemble", "cgcnn-mcdropout", "elemnet-ensemble")
        },
        progress=progress,
        pretrain=pretrain,
        pretrain_budget=pretrain_budget,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=float))
    command = "loop benchmark structure-loop " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    text = structure_loop_markdown(doc, command)
    (out / "results.md").write_text(text)
    plot_structure_loop(doc, out / "found.png")
    if as_json:
        emit_json(doc)
    else:
        typer.echo(text)


@app.command("homogenization")
def homogenization_bench(
    reference: Path = typer.Argument(..., help="The shared random_3d_rve_v02.h5."),
    samples: int | None = typer.Option(None, "--samples", help="Only the first N RVEs."),
    grids: str = typer.Option("16,32,64", "--grids", help="Grids of the convergence study."),
    convergence_samples: int = typer.Option(2, "--convergence-samples", help="RVEs refined."),
    random_samples: int = typer.Option(20, "--random-samples", help="Bounds-check samples."),
    speed_grids: str = typer.Option("32,64", "--speed-grids", help="Grids of the speed study."),
    studies: str = typer.Option(
        "reference,convergence,bounds,speed", "--studies", help="Which studies to run."
    ),
    device: str = typer.Option("cpu", "--device", help="torch device."),
    out: Path = typer.Option(Path("benchmark-results/homogenization"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """The FFT homogenization solver against the FANS reference set, refined, and bounded."""
    from loop.benchmark.homogenization import (
        homogenization_markdown,
        run_homogenization_benchmark,
    )
    from loop.errors import LoopError

    try:
        grid_list = [int(x) for x in grids.split(",")]
        speed_list = [int(x) for x in speed_grids.split(",") if x]
    except ValueError:
        raise LoopError(
            f"--grids {grids!r} / --speed-grids {speed_grids!r} are not lists of integers",
            "e.g. 16,32,64",
        ) from None
    doc = run_homogenization_benchmark(
        reference,
        samples=samples,
        grids=grid_list,
        convergence_samples=convergence_samples,
        random_samples=random_samples,
        device=device,
        speed_grids=speed_list,
        studies=[x.strip() for x in studies.split(",") if x.strip()],
        progress=None if as_json else (lambda m: typer.echo(m, err=True)),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    text = homogenization_markdown(doc, "loop benchmark homogenization " + " ".join(sys.argv[3:]))
    (out / "results.md").write_text(text)
    if as_json:
        emit_json(doc)
    else:
        typer.echo(text)


@app.command("microstructures")
def microstructures_bench(
    data: Path = typer.Argument(..., help="A set from `loop simulate microstructures`."),
    target: str = typer.Option("C33", "--target", help="Diagonal stiffness term to predict."),
    members: int = typer.Option(3, "--members", help="CNN ensemble members."),
    budget: float = typer.Option(600.0, "--budget", help="Training seconds of the ensemble."),
    epochs: int = typer.Option(300, "--epochs", help="Epoch limit per network."),
    dropout: bool = typer.Option(False, "--dropout", help="Also train the MC-dropout CNN."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the networks."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N rows."),
    device: str = typer.Option("cpu", "--device", help="torch device."),
    out: Path = typer.Option(Path("benchmark-results/microstructures"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """3-D CNN ensemble against the rule of mixtures and 2-point statistics, one split."""
    from loop.benchmark.microstructures import (
        microstructure_markdown,
        run_microstructure_benchmark,
    )
    from loop.errors import LoopError

    if members < 1 or budget <= 0 or epochs < 1:
        raise LoopError("--members, --budget and --epochs must be positive", "e.g. 3, 600, 300")
    doc = run_microstructure_benchmark(
        data,
        target=target,
        members=members,
        budget=budget,
        epochs=epochs,
        dropout=dropout,
        seed=seed,
        device=device,
        limit=limit,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=float))
    text = microstructure_markdown(doc, "loop benchmark microstructures " + " ".join(sys.argv[3:]))
    (out / "results.md").write_text(text)
    if as_json:
        emit_json(doc)
    else:
        typer.echo(text)


@app.command("design-loop")
def design_loop_bench(
    spec: Path = typer.Argument(..., help="A campaign spec with a [simulator] (the oracle)."),
    target: float = typer.Option(..., "--target", help="Value of the first objective to reach."),
    seeds: int = typer.Option(10, "--seeds", help="Seeds per strategy."),
    max_experiments: int = typer.Option(60, "--max-experiments", help="Simulations per run."),
    out: Path = typer.Option(Path("benchmark-results/design-loop"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """The planner against random sampling, with a simulator as the oracle, over seeds."""
    from loop.benchmark.design_loop import design_loop_markdown, run_design_loop
    from loop.errors import LoopError

    if seeds < 1 or max_experiments < 2:
        raise LoopError("--seeds must be >= 1 and --max-experiments >= 2", "e.g. 10 and 60")
    doc = run_design_loop(
        spec,
        target=target,
        seeds=seeds,
        max_experiments=max_experiments,
        progress=None if as_json else (lambda m: typer.echo(m, err=True)),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    text = design_loop_markdown(doc, "loop benchmark design-loop " + " ".join(sys.argv[3:]))
    (out / "results.md").write_text(text)
    if as_json:
        emit_json(doc)
    else:
        typer.echo(text)


@app.command("latent-loop")
def latent_loop_bench(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="A [latent] campaign spec with a [simulator]."),
    gan: str | None = typer.Option(None, "--gan", help="Stored GAN (default: the spec's)."),
    seeds: int = typer.Option(10, "--seeds", help="Seeds per arm."),
    budget: int | None = typer.Option(None, "--budget", help="Simulations per arm and seed."),
    batch: int | None = typer.Option(None, "--batch", help="Proposals per BO batch."),
    volume_fraction: float | None = typer.Option(
        None, "--volume-fraction", help="Fixed phase-1 fraction (default: the spec's)."
    ),
    out: Path = typer.Option(Path("benchmark-results/latent-loop"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """BO in a GAN's latent box against random latent vectors and random GRF microstructures,
    at the same number of simulations, over seeds."""
    from loop.benchmark.latent_loop import latent_loop_markdown, latent_loop_plot, run_latent_loop
    from loop.cli.common import open_store
    from loop.errors import LoopError

    if seeds < 1 or (budget is not None and budget < 2):
        raise LoopError("--seeds must be >= 1 and --budget >= 2", "e.g. --seeds 10 --budget 40")
    doc = run_latent_loop(
        spec,
        store=open_store(ctx),
        gan=gan,
        seeds=seeds,
        budget=budget,
        batch=batch,
        volume_fraction=volume_fraction,
        progress=None if as_json else (lambda m: typer.echo(m, err=True)),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    args = sys.argv[sys.argv.index("latent-loop") + 1 :] if "latent-loop" in sys.argv else []
    text = latent_loop_markdown(doc, " ".join(["loop benchmark latent-loop", *args]))
    (out / "results.md").write_text(text)
    png = latent_loop_plot(doc, out / "latent-loop.png")
    if as_json:
        emit_json({k: v for k, v in doc.items() if k != "per_seed"})
    else:
        typer.echo(text)
        typer.echo(f"wrote {out / 'results.md'}, {out / 'results.json'}, {png}")


@app.command("gan-transfer")
def gan_transfer_bench(
    ctx: typer.Context,
    gan: str = typer.Option(..., "--gan", help="A stored GAN."),
    labels: str = typer.Option("50,200", "--labels", help="Labelled-set sizes."),
    test: int = typer.Option(200, "--test", help="Test images."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds per size."),
    epochs: int = typer.Option(30, "--epochs", help="Epochs per CNN."),
    quantity: str = typer.Option("k_xx", "--quantity", help="Property from the 2-D solver."),
    out: Path = typer.Option(Path("benchmark-results/gan-transfer"), "--out", help="Folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """A small CNN from scratch against one started from the GAN's discriminator, on few
    labelled microstructures."""
    from loop.benchmark.gan_transfer import gan_transfer_markdown, run_gan_transfer
    from loop.cli.common import open_store
    from loop.errors import LoopError

    try:
        sizes = tuple(int(x) for x in labels.split(","))
    except ValueError:
        raise LoopError(f"--labels {labels!r} is not a list of integers", "e.g. 50,200") from None
    doc = run_gan_transfer(
        store=open_store(ctx),
        gan=gan,
        labels=sizes,
        test=test,
        seeds=seeds,
        epochs=epochs,
        quantity=quantity,
        progress=None if as_json else (lambda m: typer.echo(m, err=True)),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    args = sys.argv[sys.argv.index("gan-transfer") + 1 :] if "gan-transfer" in sys.argv else []
    text = gan_transfer_markdown(doc, " ".join(["loop benchmark gan-transfer", *args]))
    (out / "results.md").write_text(text)
    if as_json:
        emit_json({k: v for k, v in doc.items() if k != "runs"})
    else:
        typer.echo(text)
