"""`loop simulate ...`: run a simulator outside a campaign to make training data."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from loop.cli.common import LoopGroup, emit_json

app = typer.Typer(
    cls=LoopGroup,
    no_args_is_help=True,
    help="Run simulators outside a campaign (labelled data sets for training surrogates).",
)


def _pair(text: str, option: str) -> tuple[float, float]:
    from loop.errors import LoopError

    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise LoopError(f"{option} {text!r} is not LOW,HIGH", f"write e.g. {option} 0.2,0.6")
    return parts[0], parts[1]


@app.command("microstructures")
def microstructures(
    n: int = typer.Option(..., "--n", help="Number of microstructures."),
    size: int = typer.Option(21, "--size", help="Voxels per axis."),
    contrast: float = typer.Option(10.0, "--contrast", help="Phase-1 / phase-0 modulus ratio."),
    out: Path = typer.Option(..., "-o", "--out", help="Output file (.npz or .h5)."),
    dim: int = typer.Option(3, "--dim", help="2 or 3."),
    physics: str = typer.Option("elastic", "--physics", help="elastic or thermal."),
    poisson: float = typer.Option(0.3, "--poisson", help="Poisson's ratio of both phases."),
    vf: str = typer.Option("0.2,0.6", "--volume-fraction", help="Range of phase-1 fraction."),
    length: str = typer.Option("1,4", "--length", help="Range of correlation lengths (voxels)."),
    isotropic: bool = typer.Option(False, "--isotropic", help="One length for every axis."),
    seed: int = typer.Option(0, "--seed", help="Seed of the whole set."),
    device: str = typer.Option("cpu", "--device", help="torch device (cpu, cuda)."),
    tol: float = typer.Option(1e-6, "--tol", help="Relative CG residual."),
    column: list[int] = typer.Option(
        [],
        "--column",
        help="Solve only this load case (1-based: Mandel 11 22 33 12 23 13, or axis); "
        "repeatable. Default: the whole tensor.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Random two-phase microstructures labelled by FFT homogenization, written to a file."""
    from loop.errors import LoopError
    from loop.microgen import labelled_set, save_dataset

    if dim not in (2, 3):
        raise LoopError(f"--dim {dim} must be 2 or 3", "use --dim 2 or --dim 3")
    if physics not in ("elastic", "thermal"):
        raise LoopError(f"--physics {physics!r} is not known", "use elastic or thermal")
    if out.suffix.lower() not in (".npz", ".h5", ".hdf5"):
        raise LoopError(f"--out {out}: unknown file type", "name the output .npz or .h5")
    t0 = time.perf_counter()
    last = [t0]

    def progress(i: int, total: int) -> None:
        if not as_json and (time.perf_counter() - last[0] > 10 or i == total):
            last[0] = time.perf_counter()
            typer.echo(f"{i}/{total} microstructures, {last[0] - t0:.0f} s", err=True)

    arrays, attrs = labelled_set(
        n,
        size,
        dim=dim,
        contrast=contrast,
        poisson_ratio=poisson,
        volume_fraction=_pair(vf, "--volume-fraction"),
        length=_pair(length, "--length"),
        anisotropic=not isotropic,
        physics=physics,
        seed=seed,
        device=device,
        tol=tol,
        columns=[c - 1 for c in column] or None,
        progress=progress,
    )
    save_dataset(out, arrays, attrs)
    summary = {
        "file": str(out),
        "n": n,
        "seconds": round(time.perf_counter() - t0, 1),
        "seconds_per_sample": round(float(arrays["seconds"].mean()), 3),
        "mean_iterations": round(float(arrays["iterations"].mean()), 1),
    }
    if as_json:
        emit_json(summary)
    else:
        typer.echo(
            f"wrote {n} microstructures ({size}^{dim}, contrast {contrast:g}, {physics}) to {out}"
            f" in {summary['seconds']} s ({summary['seconds_per_sample']} s each, "
            f"{summary['mean_iterations']} CG iterations on average)"
        )
