"""`loop benchmark latent-loop`: design in a GAN's latent space against random designs, at equal
simulation budgets, over seeds (the comparison of Yang et al. 2018).

Three arms per seed, each given the same number of simulations:

- `bo`: the latent campaign itself, run as `loop run NAME --via worker` runs it (the campaign's
  surrogate and acquisition over the latent box; every proposal decoded by the GAN and solved by
  the campaign's simulator) in a scratch SQLite store that holds a copy of the named GAN.
- `random_latent`: latent vectors drawn uniformly from the box, decoded the same way and solved by
  the same simulator ("GAN samples without optimization").
- `random_grf`: thresholded Gaussian random fields from `loop.microgen` with the correlation
  lengths and angles drawn from the ranges the GAN was trained on, at the target volume fraction.

The objective is the campaign's first objective at a fixed volume fraction. Every decoded field
is thresholded at its own quantile (`[latent] volume_fraction`, `surrogates.gan.decode`), so each
design has the target fraction to the pixel, exactly as the GRF arm's images have; the spec's
outcome constraints, if any, still decide which measured designs count as feasible. Reported per
seed: the best feasible value of each arm; across seeds: the paired relative gains (BO over
random latent, random latent over random GRF, BO over random GRF), each with a two-sided 95%
Student-t interval over the per-seed gains.
"""

from __future__ import annotations

import math
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from db import Store
from loop.errors import LoopError

__all__ = ["ARMS", "run_latent_loop", "latent_loop_markdown", "latent_loop_plot", "paired_gain"]

ARMS = ("bo", "random_latent", "random_grf")


def paired_gain(a: list[float], b: list[float], maximize: bool = True) -> dict[str, Any]:
    """Per-seed relative gains of `a` over `b` (`a / b - 1`; `b / a - 1` when minimizing, so
    positive always means `a` is better), their mean and a two-sided 95% t-interval.

    Seeds where either value is missing (no feasible design) are left out and counted.
    """
    from loop.benchmark.design_loop import paired_t_interval

    pairs = [
        (x, y)
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    gains = np.array([(x / y if maximize else y / x) - 1.0 for x, y in pairs], dtype=float)
    out: dict[str, Any] = {
        "gains": gains.tolist(),
        "n": len(gains),
        "left_out": len(a) - len(gains),
        "mean": float(gains.mean()) if len(gains) else None,
        "ci95": None,
    }
    half = paired_t_interval(gains)
    if half is not None:
        out["ci95"] = [out["mean"] - half, out["mean"] + half]
    return out


def _feasible(spec: Any, values: dict[str, float]) -> bool:
    for c in spec.constraints:
        v = values.get(c.name)
        if v is None or not math.isfinite(v):
            return False
        if (c.lower is not None and v < c.lower) or (c.upper is not None and v > c.upper):
            return False
    return True


def _best(spec: Any, runs: list[dict[str, float]], maximize: bool) -> tuple[int | None, list]:
    """Index of the best feasible run and the best-so-far curve (None before the first)."""
    obj = spec.objectives[0].name
    best_i: int | None = None
    curve: list[float | None] = []
    for i, v in enumerate(runs):
        y = v.get(obj)
        if y is not None and math.isfinite(y) and _feasible(spec, v):
            if best_i is None or (y > runs[best_i][obj] if maximize else y < runs[best_i][obj]):
                best_i = i
        curve.append(None if best_i is None else float(runs[best_i][obj]))
    return best_i, curve


def _bo_arm(source: Store, spec: Any, seed: int) -> dict[str, Any]:
    from db import crud, open_store
    from loop.adapters import make_bridge
    from loop.autoloop import run_campaign
    from loop.campaigns import create_campaign_from_spec
    from loop.gan import copy_gan

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db", artifact_dir=Path(tmp) / "artifacts")
        name = f"latent_seed{seed}"
        with source.session_scope() as src, store.session_scope() as dst:
            copy_gan(source=src, target=dst, name=spec.latent.gan, artifact_dir=store.artifact_dir)
        with store.session_scope() as session:
            create_campaign_from_spec(session=session, spec=spec, candidates=None, name=name)
        bridge = make_bridge("worker", store, name)
        t = time.perf_counter()
        try:
            run_campaign(store, name, bridge, budget=spec.budget, poll_seconds=0.0)
        finally:
            bridge.close()
        secs = time.perf_counter() - t
        with store.session_scope() as session:
            rec = crud.get_campaign(session=session, name=name)
            ms = sorted(
                crud.list_measurements(session=session, campaign_id=rec.id), key=lambda m: m.id
            )
            props = {p.id: p for p in crud.list_proposals(session=session, campaign_id=rec.id)}
            strategies = sorted({p.strategy for p in props.values()})
        store.engine.dispose()
    runs = [dict(m.values) for m in ms]
    # a worker's measurement always answers a proposal
    images = [props[int(m.proposal_id or 0)].params[spec.latent.image] for m in ms]
    return {"runs": runs, "images": images, "seconds": secs, "strategies": strategies}


def _sampled_arm(sim: Any, key: str, images: Any, seed: int) -> dict[str, Any]:
    from loop.microgen import pack_image

    rng = np.random.default_rng([seed, zlib.crc32(b"latent-loop-sim")])
    t = time.perf_counter()
    packed, runs = [], []
    for img in images:
        text = pack_image(img)
        packed.append(text)
        runs.append(sim.measure({key: text}, rng))
    return {"runs": runs, "images": packed, "seconds": time.perf_counter() - t}


def run_latent_loop(
    spec_path: Path,
    *,
    store: Store,
    gan: str | None = None,
    seeds: int = 10,
    budget: int | None = None,
    batch: int | None = None,
    volume_fraction: float | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Best feasible objective at equal simulation budgets: BO in the latent box, random latent
    vectors and random GRF microstructures, over `seeds` (see the module docstring).

    Args:
        spec_path: A `[latent]` campaign spec with a simulator (the oracle).
        store: The store that holds the GAN (it is copied into each seed's scratch store).
        gan: GAN name (default: the spec's `[latent] gan`).
        budget: Simulations per arm and seed (default: the spec's budget).
        batch: Proposals per BO batch (default: the spec's batch size).
        volume_fraction: The fixed phase-1 fraction (default: the spec's
            `[latent] volume_fraction`).

    Raises:
        LoopError: The spec is not a latent campaign with a simulator, or no volume fraction is
            given, or it lies outside the GAN's training range.
    """
    import torch

    from loop.campaigns import load_campaign_spec
    from loop.gan import gan_fit, load_gan
    from loop.microgen import GRFParams, microstructure, unpack_image
    from loop.simulators import make_simulator
    from loop.spec import parse_spec
    from surrogates.gan import decode

    spec, _ = load_campaign_spec(spec_path)
    if spec.latent is None or spec.simulator is None:
        raise LoopError(
            f"{spec_path}: latent-loop needs a [latent] campaign with a [simulator]",
            'add [latent] gan = "NAME" and [simulator] name = "homogenization"',
        )
    raw = spec.model_dump(mode="json", exclude_none=True)
    if gan is not None:
        raw["latent"]["gan"] = gan
    if volume_fraction is not None:
        raw["latent"]["volume_fraction"] = volume_fraction
    if budget is not None:
        raw["budget"] = budget
    if batch is not None:
        raw["batch_size"] = batch
    spec = parse_spec(raw, str(spec_path))
    lat = spec.latent
    assert lat is not None
    vf = lat.volume_fraction
    if vf is None:
        raise LoopError(
            f"{spec_path}: no target volume fraction",
            "set [latent] volume_fraction = 0.4 in the spec, or pass --volume-fraction 0.4",
        )
    with store.session_scope() as session:
        fit = gan_fit(session=session, name=lat.gan)
        gen = load_gan(session=session, name=lat.gan)
    if gen.config.latent != lat.size:
        raise LoopError(
            f"[latent] size = {lat.size}, but GAN '{lat.gan}' has a {gen.config.latent} x "
            f"{gen.config.latent} latent map",
            f"set [latent] size = {gen.config.latent}",
        )
    data = fit.settings.get("data", {})
    vf_range = tuple(float(v) for v in data.get("volume_fraction", (0.0, 1.0)))
    lo, hi = (float(v) for v in data.get("length", (2.0, 6.0)))
    if not vf_range[0] <= vf <= vf_range[1]:
        raise LoopError(
            f"volume fraction {vf:g} lies outside the range GAN '{lat.gan}' was trained on "
            f"({vf_range[0]:g} .. {vf_range[1]:g})",
            "choose a volume fraction inside it",
        )
    size = gen.config.latent * 2 ** (len(gen.config.filters) + 1)
    obj = spec.objectives[0]
    maximize = obj.direction == "maximize"
    sim = make_simulator(spec, spec_path.resolve().parent)
    say = progress or (lambda _m: None)
    n = spec.budget
    per_seed: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for seed in range(seeds):
        arms: dict[str, dict[str, Any]] = {}
        arms["bo"] = _bo_arm(store, spec, seed)
        rng = np.random.default_rng([seed, zlib.crc32(b"random-latent")])
        z = torch.as_tensor(rng.random((n, lat.size * lat.size)), dtype=torch.float32)
        with torch.no_grad():
            imgs = decode(gen, z, volume_fraction=vf).numpy()
        arms["random_latent"] = _sampled_arm(sim, lat.image, imgs, seed)
        rng = np.random.default_rng([seed, zlib.crc32(b"random-grf")])
        grf = [
            microstructure(
                (size, size),
                GRFParams(
                    vf,
                    tuple(float(x) for x in rng.uniform(lo, hi, size=2)),
                    float(rng.uniform(0.0, 180.0)),
                    int(rng.integers(2**31)),
                ),
            )
            for _ in range(n)
        ]
        arms["random_grf"] = _sampled_arm(sim, lat.image, grf, seed)
        row: dict[str, Any] = {"seed": seed}
        for arm, res in arms.items():
            i, curve = _best(spec, res["runs"], maximize)
            vals = [r.get(obj.name) for r in res["runs"]]
            row[arm] = {
                "best": None if i is None else float(res["runs"][i][obj.name]),
                "best_image": None if i is None else res["images"][i],
                "simulations": len(res["runs"]),
                "feasible": sum(_feasible(spec, r) for r in res["runs"]),
                "mean": float(np.nanmean([np.nan if v is None else v for v in vals])),
                "volume_fraction": float(np.mean([unpack_image(t).mean() for t in res["images"]])),
                "curve": curve,
                "seconds": round(res["seconds"], 2),
            }
            if "strategies" in res:
                row[arm]["strategies"] = res["strategies"]
        per_seed.append(row)
        say(
            f"seed {seed}: best {obj.name} "
            + ", ".join(
                f"{a} {row[a]['best']:.4g}" if row[a]["best"] is not None else f"{a} -"
                for a in ARMS
            )
            + f" (bo {row['bo']['seconds']:.0f} s)"
        )

    def col(arm: str, key: str = "best") -> list[Any]:
        return [r[arm][key] for r in per_seed]

    summary = {}
    for arm in ARMS:
        b = np.array([np.nan if v is None else v for v in col(arm)], dtype=float)
        summary[arm] = {
            "best_mean": float(np.nanmean(b)),
            "best_std": float(np.nanstd(b, ddof=1)) if len(b) > 1 else 0.0,
            "sample_mean": float(np.mean(col(arm, "mean"))),
            "seconds_per_seed": float(np.mean(col(arm, "seconds"))),
            "seeds_without_feasible": int(np.isnan(b).sum()),
        }
    return {
        "spec": str(spec_path),
        "gan": lat.gan,
        "gan_fit": {"id": fit.id, "settings": fit.settings, "metrics": fit.metrics},
        "image_size": size,
        "latent_dim": lat.size * lat.size,
        "objective": obj.name,
        "direction": obj.direction,
        "volume_fraction": vf,
        "volume_fraction_method": "quantile threshold of each decoded field",
        "constraints": [c.model_dump(mode="json") for c in spec.constraints],
        "training_ranges": {"volume_fraction": list(vf_range), "length": [lo, hi]},
        "seeds": seeds,
        "budget": n,
        "batch_size": spec.batch_size,
        "initial_design": spec.n_initial(),
        "surrogate": spec.model.surrogate,
        "acquisition": spec.model.acquisition,
        "simulator": spec.simulator.model_dump(mode="json") if spec.simulator else None,
        "interval": "two-sided 95% Student-t over the per-seed relative gains",
        "summary": summary,
        "gains": {
            "bo_over_random_latent": paired_gain(col("bo"), col("random_latent"), maximize),
            "random_latent_over_random_grf": paired_gain(
                col("random_latent"), col("random_grf"), maximize
            ),
            "bo_over_random_grf": paired_gain(col("bo"), col("random_grf"), maximize),
            "random_latent_over_random_grf_sample_mean": paired_gain(
                col("random_latent", "mean"), col("random_grf", "mean"), maximize
            ),
        },
        "seconds": round(time.perf_counter() - t_all, 1),
        "per_seed": per_seed,
    }


def _pct(g: dict[str, Any]) -> str:
    if g["mean"] is None:
        return "n/a"
    s = f"{100 * g['mean']:+.1f}%"
    if g["ci95"] is not None:
        s += f" (95% CI {100 * g['ci95'][0]:+.1f}% .. {100 * g['ci95'][1]:+.1f}%)"
    if g["left_out"]:
        s += f", {g['left_out']} seed(s) without a feasible design left out"
    return s


def latent_loop_markdown(doc: dict[str, Any], command: str) -> str:
    """The results table and gains as Markdown."""
    lines = [
        f"`{command}`",
        "",
        f"{doc['objective']} ({doc['direction']}) at volume fraction {doc['volume_fraction']:g} "
        f"({doc['volume_fraction_method']}); GAN '{doc['gan']}' ({doc['latent_dim']} latent "
        f"variables, {doc['image_size']} x {doc['image_size']} images); {doc['budget']} "
        f"simulations per arm and seed, {doc['seeds']} seeds; BO: {doc['surrogate']} + "
        f"{doc['acquisition']}, batches of {doc['batch_size']} after {doc['initial_design']} "
        f"initial points; {doc['seconds']:.0f} s in all",
        "",
        "| arm | mean best | std | mean of all samples | s per seed |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for arm, s in doc["summary"].items():
        lines.append(
            f"| {arm} | {s['best_mean']:.4g} | {s['best_std']:.3g} | {s['sample_mean']:.4g} | "
            f"{s['seconds_per_seed']:.0f} |"
        )
    lines += ["", "Best per seed:"]
    for arm in ARMS:
        vals = ", ".join(
            "-" if r[arm]["best"] is None else f"{r[arm]['best']:.4g}" for r in doc["per_seed"]
        )
        lines.append(f"- {arm}: {vals}")
    g = doc["gains"]
    lines += [
        "",
        f"Paired relative gains ({doc['interval']}):",
        "",
        f"- BO over random latent (best): {_pct(g['bo_over_random_latent'])}",
        f"- random latent over random GRF (best): {_pct(g['random_latent_over_random_grf'])}",
        "- random latent over random GRF (mean of all samples): "
        + _pct(g["random_latent_over_random_grf_sample_mean"]),
        f"- BO over random GRF (best): {_pct(g['bo_over_random_grf'])}",
    ]
    return "\n".join(lines) + "\n"


def latent_loop_plot(doc: dict[str, Any], path: Path) -> Path:
    """Best-so-far against simulations (mean over seeds, with the range) and the best design of
    each arm for seed 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loop.microgen import unpack_image

    fig = plt.figure(figsize=(11, 3.4))
    grid = fig.add_gridspec(1, 5, width_ratios=[2.2, 0.1, 1, 1, 1])
    ax = fig.add_subplot(grid[0, 0])
    x = np.arange(1, doc["budget"] + 1)
    for arm in ARMS:
        curves = np.array(
            [[np.nan if v is None else v for v in r[arm]["curve"]] for r in doc["per_seed"]],
            dtype=float,
        )
        m = np.nanmean(curves, axis=0)
        (line,) = ax.plot(x[: len(m)], m, label=arm)
        ax.fill_between(
            x[: len(m)],
            np.nanmin(curves, axis=0),
            np.nanmax(curves, axis=0),
            alpha=0.15,
            color=line.get_color(),
        )
    ax.set_xlabel("simulations")
    ax.set_ylabel(f"best {doc['objective']}")
    ax.legend(fontsize=8)
    row = doc["per_seed"][0]
    for k, arm in enumerate(ARMS):
        a = fig.add_subplot(grid[0, 2 + k])
        if row[arm]["best_image"] is not None:
            a.imshow(unpack_image(row[arm]["best_image"]), cmap="gray_r", interpolation="nearest")
            a.set_title(f"{arm}\n{row[arm]['best']:.4g}", fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
