"""Train, store, load and check the microstructure GAN (`loop surrogate train-gan`).

The GAN (`surrogates.gan`) is trained on 2-D periodic Gaussian-random-field microstructures from
`loop.microgen` and stored like a pretrained surrogate: a model_fit row without a campaign, named,
whose checkpoint holds both networks, their configuration, the training report and the quality
statistics of generated images against the training set (volume fraction, two-point correlation
and lineal-path curves, and the distances between them).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from db import ModelFitRecord, crud
from loop.errors import ConflictError, LoopError, NotFoundError

__all__ = [
    "GAN_KIND",
    "GANResult",
    "training_images",
    "train_and_store_gan",
    "gan_fit",
    "copy_gan",
    "load_gan",
    "quality",
    "decode_sizes",
    "decode_sizes_plot",
]

GAN_KIND = "gan"


@dataclass
class GANResult:
    record: ModelFitRecord
    report: dict[str, Any]
    quality: dict[str, Any]
    seconds: float


def training_images(
    n: int,
    size: int,
    *,
    volume_fraction: tuple[float, float] = (0.3, 0.5),
    length: tuple[float, float] = (2.0, 6.0),
    seed: int = 0,
) -> np.ndarray:
    """`n` binary 2-D GRF microstructures `size x size`, each with its own volume fraction,
    correlation lengths and angle drawn uniformly from the ranges."""
    from loop.microgen import GRFParams, microstructure

    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        p = GRFParams(
            float(rng.uniform(*volume_fraction)),
            tuple(float(x) for x in rng.uniform(*length, size=2)),
            float(rng.uniform(0.0, 180.0)),
            int(rng.integers(2**31)),
        )
        out[i] = microstructure((size, size), p)
    return out


def quality(generator: Any, real: np.ndarray, n: int = 256, seed: int = 0) -> dict[str, Any]:
    """Statistics of `n` generated images (random latent vectors) against the real ones."""
    import torch

    from surrogates.gan import decode
    from surrogates.microstats import (
        curve_distance,
        lineal_path,
        radial_average,
        two_point_correlation,
    )

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.rand(n, generator.config.dim, generator=g)
        fake = torch.cat([decode(generator, z[i : i + 64]) for i in range(0, n, 64)]).double()
    real_t = torch.as_tensor(real[:n]).double()
    out: dict[str, Any] = {}
    vf_r, vf_f = real_t.mean(dim=(1, 2)), fake.mean(dim=(1, 2))
    out["volume_fraction"] = {
        "real_mean": float(vf_r.mean()),
        "real_std": float(vf_r.std()),
        "generated_mean": float(vf_f.mean()),
        "generated_std": float(vf_f.std()),
    }
    s2r = radial_average(two_point_correlation(real_t))
    s2f = radial_average(two_point_correlation(fake))
    lpr = torch.cat([lineal_path(real_t, 0, 32), lineal_path(real_t, 1, 32)])
    lpf = torch.cat([lineal_path(fake, 0, 32), lineal_path(fake, 1, 32)])
    out["s2_distance"] = curve_distance(s2r, s2f)
    out["lineal_path_distance"] = curve_distance(lpr, lpf)
    out["curves"] = {
        "s2_real": s2r.mean(0).tolist(),
        "s2_generated": s2f.mean(0).tolist(),
        "lineal_path_real": lpr.mean(0).tolist(),
        "lineal_path_generated": lpf.mean(0).tolist(),
    }
    # the same statistics between two halves of the real set: the floor of the distances
    h = len(real_t) // 2
    if h >= 8:
        out["s2_distance_real_halves"] = curve_distance(s2r[:h], s2r[h:])
        out["lineal_path_distance_real_halves"] = curve_distance(
            torch.cat([lineal_path(real_t[:h], 0, 32), lineal_path(real_t[:h], 1, 32)]),
            torch.cat([lineal_path(real_t[h:], 0, 32), lineal_path(real_t[h:], 1, 32)]),
        )
    return out


def quality_plot(q: dict[str, Any], samples: np.ndarray, path: Path) -> Path:
    """S2 and lineal-path curves, real against generated, with example generated images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = q["curves"]
    k = min(4, len(samples))
    fig, axes = plt.subplots(1, 2 + k, figsize=(4 * 2 + 2.2 * k, 3.2))
    axes[0].plot(c["s2_real"], label="training")
    axes[0].plot(c["s2_generated"], "--", label="generated")
    axes[0].set_xlabel("r (pixels)")
    axes[0].set_ylabel("S2(r)")
    axes[0].legend()
    axes[1].plot(c["lineal_path_real"], label="training")
    axes[1].plot(c["lineal_path_generated"], "--", label="generated")
    axes[1].set_xlabel("r (pixels)")
    axes[1].set_ylabel("L(r)")
    for ax, img in zip(axes[2:], samples[:k], strict=True):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def train_and_store_gan(
    *,
    session: Session,
    name: str,
    artifact_dir: Path | str,
    n: int = 5000,
    latent: int = 4,
    filters: tuple[int, ...] = (128, 64, 32, 16),
    steps: int = 20000,
    time_budget: float | None = None,
    batch_size: int = 32,
    volume_fraction: tuple[float, float] = (0.3, 0.5),
    length: tuple[float, float] = (2.0, 6.0),
    seed: int = 0,
    device: str = "cpu",
    replace: bool = False,
    plot: Path | None = None,
) -> GANResult:
    """Generate the training set, train the GAN, check it and store it as model `name`.

    Raises:
        ConflictError: A model called `name` exists and `replace` is false.
        LoopError: Bad sizes.
    """
    import torch

    from loop.engine import _save_checkpoint
    from loop.pretrained import _check_name
    from surrogates.gan import GANConfig, decode, train_gan

    _check_name(name)
    existing = crud.named_model_fits(session=session, name=name)
    if existing and not replace:
        raise ConflictError(
            f"a stored model named '{name}' already exists (fit {existing[0].id})",
            "choose another --name, or pass --replace to overwrite it",
        )
    if n < 16:
        raise LoopError(f"--n {n} is too few images to train a GAN on", "use hundreds or more")
    try:
        config = GANConfig(latent=latent, filters=tuple(filters))
    except ValueError as err:
        raise LoopError(str(err), "use e.g. --latent 4") from None
    t0 = time.perf_counter()
    images = training_images(
        n, config.image, volume_fraction=volume_fraction, length=length, seed=seed
    )
    gen_s = time.perf_counter() - t0
    G, D, rep = train_gan(
        torch.as_tensor(images),
        config,
        steps=steps,
        time_budget=time_budget,
        batch_size=batch_size,
        seed=seed,
        device=device,
    )
    G, D = G.cpu(), D.cpu()
    q = quality(G, images, seed=seed + 1)
    state = {
        "arch": config.to_dict(),
        "generator": {k: v.cpu() for k, v in G.state_dict().items()},
        "discriminator": {k: v.cpu() for k, v in D.state_dict().items()},
    }
    for old in existing:
        if old.checkpoint_path:
            Path(old.checkpoint_path).unlink(missing_ok=True)
        crud.delete_model_fit(session=session, fit_id=old.id)
    stem = f"{name}-{int(time.time() * 1000)}"
    path, sha = _save_checkpoint(state, Path(artifact_dir) / "pretrained", stem)
    report = {**rep.to_dict(), "data_seconds": gen_s, "device": device}
    settings = {
        "arch": config.to_dict(),
        "data": {
            "n": n,
            "size": config.image,
            "volume_fraction": list(volume_fraction),
            "length": list(length),
            "generator": "2-D periodic Gaussian random field, thresholded",
        },
        "steps": steps,
        "time_budget": time_budget,
        "batch_size": batch_size,
        "seed": seed,
        "loss": "hinge, spectral-norm discriminator, two-point statistics (weight 10)",
    }
    metrics = {
        "n_train": n,
        "steps": rep.steps,
        "epochs": rep.epochs,
        "seconds": rep.seconds,
        "device": device,
        "quality": {k: v for k, v in q.items() if k != "curves"},
    }
    rec = crud.add_model_fit(
        session=session,
        campaign_id=None,
        name=name,
        kind=GAN_KIND,
        settings=settings,
        data_version=hashlib.sha256(images.tobytes()).hexdigest()[:32],
        metrics=metrics,
        heldout=[],
        checkpoint_path=path,
        checkpoint_sha256=sha,
    )
    crud.add_event(
        session=session,
        campaign_id=None,
        kind="pretrained",
        payload={"model_fit": rec.id, "name": name, "kind": GAN_KIND, "rows": n},
    )
    if plot is not None:
        with torch.no_grad():
            samples = decode(G, torch.rand(4, config.dim)).numpy()
        quality_plot(q, samples, plot)
    return GANResult(rec, report, q, time.perf_counter() - t0)


def gan_fit(*, session: Session, name: str) -> ModelFitRecord:
    """The model-fit record of stored GAN `name` (settings hold its training-data ranges).

    Raises:
        NotFoundError: No GAN of that name.
    """
    fits = [f for f in crud.named_model_fits(session=session, name=name) if f.kind == GAN_KIND]
    if not fits:
        known = sorted(
            {f.name for f in crud.named_model_fits(session=session) if f.kind == GAN_KIND}
        )
        raise NotFoundError(
            f"no GAN named '{name}'" + (f"; stored: {', '.join(known)}" if known else ""),
            "train one with `loop surrogate train-gan --name NAME`",
        )
    return fits[0]


def _checkpoint_bytes(fit: ModelFitRecord, name: str) -> bytes:
    p = Path(fit.checkpoint_path or "")
    if not p.is_file():
        raise NotFoundError(f"the checkpoint of GAN '{name}' is missing ({p})", "train it again")
    data = p.read_bytes()
    if hashlib.sha256(data).hexdigest() != fit.checkpoint_sha256:
        raise NotFoundError(f"the checkpoint {p} of GAN '{name}' was altered", "train it again")
    return data


def copy_gan(
    *, source: Session, target: Session, name: str, artifact_dir: Path | str
) -> ModelFitRecord:
    """Copy stored GAN `name` (record and checkpoint) from one store into another, e.g. a
    benchmark's scratch store, under the same name.

    Raises:
        NotFoundError: No GAN of that name in `source`, or its checkpoint is missing or altered.
        ConflictError: `target` already holds a model of that name.
    """
    fit = gan_fit(session=source, name=name)
    if crud.named_model_fits(session=target, name=name):
        raise ConflictError(
            f"the target store already has a model named '{name}'",
            "copy into a fresh store, or delete that model first",
        )
    directory = Path(artifact_dir) / "pretrained"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / Path(fit.checkpoint_path or f"{name}.pt").name
    path.write_bytes(_checkpoint_bytes(fit, name))
    return crud.add_model_fit(
        session=target,
        campaign_id=None,
        name=name,
        kind=GAN_KIND,
        settings=fit.settings,
        data_version=fit.data_version,
        metrics=fit.metrics,
        heldout=[],
        checkpoint_path=str(path),
        checkpoint_sha256=fit.checkpoint_sha256,
    )


def load_gan(*, session: Session, name: str, part: str = "generator") -> Any:
    """The generator (or, with `part="discriminator"`, the discriminator) of stored GAN `name`,
    in eval mode on the CPU.

    Raises:
        NotFoundError: No GAN of that name, or its checkpoint is missing or altered.
    """
    import torch

    from surrogates.gan import Discriminator, GANConfig, Generator

    if part not in ("generator", "discriminator"):
        raise ValueError(f"part must be 'generator' or 'discriminator', got {part!r}")
    fit = gan_fit(session=session, name=name)
    state = torch.load(io.BytesIO(_checkpoint_bytes(fit, name)), weights_only=True)
    config = GANConfig.from_dict(state["arch"])
    net = Generator(config) if part == "generator" else Discriminator(config)
    net.load_state_dict(state[part])
    return net.eval()


def decode_sizes(
    generator: Any,
    sizes: tuple[int, ...],
    *,
    n: int = 16,
    volume_fraction: float | None = None,
    reference: np.ndarray | None = None,
    seed: int = 0,
) -> dict[int, dict[str, Any]]:
    """Decode `n` random latent maps of each side in `sizes` (the generator is fully
    convolutional, so a `2s x 2s` map makes an image twice as wide) and measure each set:
    image side, volume fraction and, given `reference` images, the distance of the radially
    averaged S2 curves over the shifts both sets share.

    Returns:
        side -> {"image", "volume_fraction", "s2_distance", "images"} (images: `n x H x W`).
    """
    import torch

    from surrogates.gan import decode
    from surrogates.microstats import curve_distance, radial_average, two_point_correlation

    g = torch.Generator().manual_seed(seed)
    ref = None
    if reference is not None:
        ref = radial_average(two_point_correlation(torch.as_tensor(reference).double()))
    out: dict[int, dict[str, Any]] = {}
    for s in sizes:
        z = torch.rand(n, 1, s, s, generator=g)
        with torch.no_grad():
            imgs = decode(generator, z, volume_fraction=volume_fraction).double()
        row: dict[str, Any] = {
            "image": int(imgs.shape[-1]),
            "volume_fraction": float(imgs.mean()),
            "images": imgs.numpy().astype(np.uint8),
        }
        if ref is not None:
            cur = radial_average(two_point_correlation(imgs))
            r = min(cur.shape[1], ref.shape[1])
            row["s2_distance"] = curve_distance(cur[:, :r], ref[:, :r])
        out[s] = row
    return out


def decode_sizes_plot(result: dict[int, dict[str, Any]], path: Path) -> Path:
    """One decoded image per latent size, drawn at a common pixel scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [r["image"] for r in result.values()]
    widths = [s / max(sides) for s in sides]
    fig, axes = plt.subplots(
        1, len(result), figsize=(4.0 * sum(widths) + 1.0, 4.4), gridspec_kw={"width_ratios": widths}
    )
    axes = np.atleast_1d(axes)
    for ax, (s, r) in zip(axes, result.items(), strict=True):
        ax.imshow(r["images"][0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{s}x{s} -> {r['image']} px", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
