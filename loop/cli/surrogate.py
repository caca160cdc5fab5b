"""`loop surrogate ...`: pretrain, list and delete named surrogates for transfer learning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from loop.cli.common import LoopGroup, console, emit_json, open_store

app = typer.Typer(
    cls=LoopGroup, no_args_is_help=True, help="Pretrained surrogates for transfer learning."
)


def _options(texts: list[str]) -> dict[str, Any]:
    from loop.benchmark.surrogate import parse_value
    from loop.errors import LoopError

    out: dict[str, Any] = {}
    for text in texts:
        key, eq, raw = text.partition("=")
        if not eq or not key.strip():
            raise LoopError(f"--option {text!r} is not KEY=VALUE", "write e.g. --option size=small")
        # `MODEL:KEY=VALUE`, as `loop benchmark surrogate` takes it, works too
        out[key.split(":", 1)[-1].strip()] = parse_value(raw)
    return out


@app.command()
def pretrain(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="CSV file with a formula and a target column."),
    name: str = typer.Option(..., "--name", help="Name campaigns use to fine-tune from it."),
    input_column: str = typer.Option(
        "formula", "--input", help="Formula column (CGCNN: the CIF or structure column, cif)."
    ),
    target: str = typer.Option("target", "--target", help="Target column."),
    model: str = typer.Option(
        "elemnet-ensemble",
        "--model",
        help="elemnet-ensemble, elemnet-dropout, cgcnn-ensemble or cgcnn-mcdropout.",
    ),
    option: list[str] = typer.Option(
        [], "--option", help="Surrogate option KEY=VALUE (repeatable), e.g. size=small."
    ),
    drop_abs_above: float | None = typer.Option(
        None, "--drop-abs-above", help="Drop rows whose |target| exceeds this (DFT failures)."
    ),
    skip_bad_rows: bool = typer.Option(
        False, "--skip-bad-rows", help="Drop unreadable rows (reported) instead of refusing."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use a random subset of N rows."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fit."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: CUDA if any)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a model of that name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Train a composition surrogate (ElemNet) or a crystal-graph one (CGCNN, on a table with a
    CIF column or a JSON table of pymatgen structures) on a large table; store it under a name."""
    from loop.benchmark.surrogate_data import load_composition_table
    from loop.pretrained import (
        STRUCTURE_PRETRAINABLE,
        StructureTable,
        check_can_pretrain,
        load_structure_table_for_pretraining,
    )
    from loop.pretrained import pretrain as _pretrain

    opts = _options(option)
    store = open_store(ctx)
    with store.session_scope() as session:
        check_can_pretrain(session=session, name=name, surrogate=model, replace=replace)
    table: Any
    if model in STRUCTURE_PRETRAINABLE:
        table = load_structure_table_for_pretraining(
            data,
            input_column="cif" if input_column == "formula" else input_column,
            target_column=target,
            limit=limit,
        )
    else:
        table = load_composition_table(
            data,
            input_column=input_column,
            target_column=target,
            skip_bad_rows=skip_bad_rows,
            drop_abs_above=drop_abs_above,
            limit=limit,
            limit_seed=seed,
        )
    if not as_json and isinstance(table, StructureTable):
        console().print(f"training {model} on {len(table)} structures of {data}")
    elif not as_json:
        dropped = ", ".join(f"{n} {why}" for why, n in table.dropped.items() if n)
        console().print(
            f"training {model} on {len(table)} rows of {data}"
            + (f" (dropped: {dropped})" if dropped else "")
        )
    with store.session_scope() as session:
        res = _pretrain(
            session=session,
            name=name,
            table=table,
            surrogate=model,
            options=opts,
            seed=seed,
            device=device,
            artifact_dir=store.artifact_dir,
            replace=replace,
        )
        rec = res.record
    m = res.metrics.get(target, {})
    if as_json:
        emit_json({"id": rec.id, "name": rec.name, "kind": rec.kind, "metrics": res.metrics})
        return
    console().print(
        f"stored pretrained model '{rec.name}' (fit {rec.id}, {rec.kind}) in "
        f"{res.seconds:.1f} s on {res.metrics.get('device')}"
    )
    if m.get("n"):
        console().print(
            f"held-out ({m['n']} rows): MAE {m['mae']:.4g}, RMSE {m['rmse']:.4g}, "
            f"90% coverage {m['coverage90']:.2f}, sigma scale {res.metrics.get('sigma_scale')}"
        )
    console().print(f'fine-tune in a campaign with  surrogate_options = {{pretrained = "{name}"}}')


@app.command("train-gan")
def train_gan_cmd(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Name latent-space campaigns use."),
    n: int = typer.Option(5000, "--n", help="Training microstructures (2-D GRF)."),
    latent: int = typer.Option(4, "--latent", help="Side of the latent map (4: 16 variables)."),
    filters: str = typer.Option("128,64,32,16", "--filters", help="Generator filters."),
    steps: int = typer.Option(20000, "--steps", help="Training steps (one D and one G update)."),
    budget: float | None = typer.Option(None, "--budget", help="Stop after these seconds."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per step."),
    vf: str = typer.Option("0.3,0.5", "--volume-fraction", help="Phase-1 fraction range."),
    length: str = typer.Option("2,6", "--length", help="Correlation length range (pixels)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the training."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the quality curves."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a model of that name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Train the microstructure GAN on generated 2-D microstructures and store it by name."""
    from loop.cli.simulate import _pair
    from loop.errors import LoopError
    from loop.gan import train_and_store_gan

    try:
        filt = tuple(int(x) for x in filters.split(","))
    except ValueError:
        raise LoopError(
            f"--filters {filters!r} is not a list of integers", "e.g. 128,64,32,16"
        ) from None
    lo, hi = _pair(vf, "--volume-fraction")
    if not 0 < lo <= hi < 1:
        raise LoopError(f"--volume-fraction {vf} must lie in (0, 1)", "e.g. 0.3,0.5")
    store = open_store(ctx)
    with store.session_scope() as session:
        res = train_and_store_gan(
            session=session,
            name=name,
            artifact_dir=store.artifact_dir,
            n=n,
            latent=latent,
            filters=filt,
            steps=steps,
            time_budget=budget,
            batch_size=batch_size,
            volume_fraction=(lo, hi),
            length=_pair(length, "--length"),
            seed=seed,
            device=device,
            replace=replace,
            plot=plot,
        )
        rec = res.record
    q = res.quality
    if as_json:
        emit_json(
            {
                "id": rec.id,
                "name": rec.name,
                "report": {k: v for k, v in res.report.items() if not k.endswith("loss")},
                "quality": {k: v for k, v in q.items() if k != "curves"},
            }
        )
        return
    vfq = q["volume_fraction"]
    console().print(
        f"stored GAN '{rec.name}' (fit {rec.id}): {res.report['steps']} steps "
        f"({res.report['epochs']:.1f} epochs) in {res.report['seconds']:.0f} s on {device}"
    )
    console().print(
        f"volume fraction {vfq['generated_mean']:.3f} +- {vfq['generated_std']:.3f} generated, "
        f"{vfq['real_mean']:.3f} +- {vfq['real_std']:.3f} training; distance of S2 curves "
        f"{q['s2_distance']:.4f}, of lineal-path curves {q['lineal_path_distance']:.4f}"
    )


@app.command("decode-gan")
def decode_gan_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A stored GAN."),
    sizes: str = typer.Option("4,8", "--sizes", help="Latent map sides to decode."),
    n: int = typer.Option(16, "--n", help="Images per size."),
    vf: float | None = typer.Option(
        None, "--volume-fraction", help="Threshold each image at this phase-1 fraction."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="PNG with one image per size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latent maps."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Decode random latent maps of several sizes (larger maps make larger images) and compare
    their volume fraction and S2 with fresh training-like microstructures."""
    from loop.errors import LoopError
    from loop.gan import decode_sizes, decode_sizes_plot, gan_fit, load_gan, training_images

    try:
        sides = tuple(int(x) for x in sizes.split(","))
    except ValueError:
        raise LoopError(f"--sizes {sizes!r} is not a list of integers", "e.g. 4,8,16") from None
    if any(s < 1 for s in sides) or n < 1:
        raise LoopError(f"--sizes {sizes} and --n {n} must be positive", "e.g. --sizes 4,8")
    store = open_store(ctx)
    with store.session_scope() as session:
        data = gan_fit(session=session, name=name).settings.get("data", {})
        gen = load_gan(session=session, name=name)
    ref = training_images(
        max(n, 16),
        int(data.get("size", 128)),
        volume_fraction=tuple(data.get("volume_fraction", (0.3, 0.5))),
        length=tuple(data.get("length", (2.0, 6.0))),
        seed=seed + 7,
    )
    res = decode_sizes(gen, sides, n=n, volume_fraction=vf, reference=ref, seed=seed)
    if plot is not None:
        decode_sizes_plot(res, plot)
    rows = [{"latent": s, **{k: v for k, v in r.items() if k != "images"}} for s, r in res.items()]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        console().print(
            f"{r['latent']} x {r['latent']} latent -> {r['image']} px: volume fraction "
            f"{r['volume_fraction']:.3f}, S2 distance to training-like images "
            f"{r['s2_distance']:.4f}"
        )


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """List pretrained surrogates."""
    from rich.table import Table

    from loop.pretrained import list_pretrained

    store = open_store(ctx)
    with store.session_scope() as session:
        fits = list_pretrained(session=session)
    if as_json:
        emit_json(
            [
                {
                    "id": f.id,
                    "name": f.name,
                    "kind": f.kind,
                    "settings": f.settings,
                    "metrics": f.metrics,
                    "created_at": f.created_at,
                }
                for f in fits
            ]
        )
        return
    if not fits:
        console().print("no pretrained models; train one with `loop surrogate pretrain`")
        return
    t = Table("name", "kind", "rows", "held-out MAE", "created")
    for f in fits:
        data = f.settings.get("data", {})
        target = data.get("target", "")
        mae = f.metrics.get(target, {}).get("mae")
        t.add_row(
            f.name,
            f.kind,
            str(data.get("rows_used", "")),
            f"{mae:.4g}" if isinstance(mae, float) else "",
            f"{f.created_at:%Y-%m-%d %H:%M}",
        )
    console().print(t)


@app.command()
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Pretrained model name."),
) -> None:
    """Delete a pretrained surrogate and its checkpoint."""
    from loop.pretrained import delete_pretrained

    store = open_store(ctx)
    with store.session_scope() as session:
        n = delete_pretrained(session=session, name=name)
    console().print(f"deleted pretrained model '{name}' ({n} fit{'s' if n != 1 else ''})")
