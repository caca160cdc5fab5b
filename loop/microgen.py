"""Two-phase periodic microstructures: thresholded Gaussian random fields, and user images.

A microstructure is a 2-D or 3-D array whose voxels hold the fraction of phase 1 (0 or 1 for a
binary image). Generated ones are periodic by construction (the random field is filtered in
Fourier space on the periodic grid), so the FFT homogenization in `loop.homogenize` sees no
seams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import LoopError

__all__ = [
    "pack_image",
    "unpack_image",
    "GRFParams",
    "gaussian_random_field",
    "microstructure",
    "load_images",
    "save_dataset",
    "load_dataset",
]


@dataclass(frozen=True)
class GRFParams:
    """Generator parameters of a thresholded Gaussian random field.

    Attributes:
        volume_fraction: Fraction of phase 1, in (0, 1); met to within one voxel.
        lengths: Correlation length per axis in voxels (the standard deviation of the Gaussian
            smoothing kernel), before rotation.
        angle: Rotation of the kernel in the plane of axes 0 and 1, in degrees.
        seed: Seed of the white noise.
    """

    volume_fraction: float
    lengths: tuple[float, ...]
    angle: float = 0.0
    seed: int = 0

    def check(self, dim: int) -> None:
        """Raise a LoopError naming the bad field."""
        if not 0.0 < self.volume_fraction < 1.0:
            raise LoopError(
                f"volume_fraction must lie in (0, 1), got {self.volume_fraction}",
                "give the fraction of phase 1, e.g. 0.4",
            )
        if len(self.lengths) != dim:
            raise LoopError(
                f"lengths has {len(self.lengths)} values for a {dim}-D image",
                f"give one correlation length per axis ({dim} values)",
            )
        if any(not (x > 0 and math.isfinite(x)) for x in self.lengths):
            raise LoopError(
                f"correlation lengths must be positive, got {list(self.lengths)}",
                "give lengths in voxels, e.g. 2.0",
            )


def gaussian_random_field(
    shape: Sequence[int], lengths: Sequence[float], angle: float, seed: int
) -> np.ndarray:
    """A periodic, zero-mean, unit-variance Gaussian random field with a Gaussian kernel."""
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape)
    freqs = np.meshgrid(
        *[np.fft.fftfreq(n) for n in shape[:-1]], np.fft.rfftfreq(shape[-1]), indexing="ij"
    )
    th = math.radians(angle)
    k0 = math.cos(th) * freqs[0] + math.sin(th) * freqs[1]
    k1 = -math.sin(th) * freqs[0] + math.cos(th) * freqs[1]
    rotated = [k0, k1, *freqs[2:]]
    arg = sum((2.0 * math.pi * ell * k) ** 2 for ell, k in zip(lengths, rotated, strict=True))
    axes = tuple(range(len(shape)))
    field = np.fft.irfftn(np.fft.rfftn(noise) * np.exp(-0.5 * arg), s=shape, axes=axes)
    std = field.std()
    if std == 0:
        return field
    return (field - field.mean()) / std


def microstructure(shape: Sequence[int], params: GRFParams) -> np.ndarray:
    """A binary (uint8) image with phase 1 where the random field exceeds its quantile.

    Raises:
        LoopError: Bad shape or parameters.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise LoopError(
            f"a microstructure is 2-D or 3-D with at least 2 voxels per axis, got {shape}",
            "give a shape such as (32, 32) or (21, 21, 21)",
        )
    params.check(len(shape))
    field = gaussian_random_field(shape, params.lengths, params.angle, params.seed)
    n = field.size
    k = int(round(params.volume_fraction * n))
    k = min(max(k, 1), n - 1)
    order = np.argsort(field, axis=None)
    img = np.zeros(n, dtype=np.uint8)
    img[order[n - k :]] = 1
    return img.reshape(shape)


def _check_images(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim not in (3, 4):
        raise LoopError(
            f"{where}: expected a stack of 2-D or 3-D images (3 or 4 axes), got shape {arr.shape}",
            "save the images as one array of shape (n, x, y) or (n, x, y, z)",
        )
    a = np.asarray(arr, dtype=float)
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a).reshape(a.shape[0], -1).all(1))[0, 0]
        raise LoopError(
            f"{where}: image {bad} holds NaN or infinite voxels",
            "store the fraction of phase 1 per voxel, in [0, 1]",
        )
    if a.min() < 0 or a.max() > 1:
        per = a.reshape(a.shape[0], -1)
        bad = int(np.argmax((per.min(1) < 0) | (per.max(1) > 1)))
        raise LoopError(
            f"{where}: image {bad} has voxels outside [0, 1] (from {per[bad].min()} to "
            f"{per[bad].max()})",
            "map the two phases to 0 and 1 (or store fractions of phase 1)",
        )
    return a


def load_images(path: Path | str, key: str | None = None) -> np.ndarray:
    """A stack of microstructure images from a .npy, .npz or HDF5 file.

    Args:
        path: The file.
        key: The array's name in a .npz or the dataset path in an HDF5 file; default "images".

    Returns:
        Float array (n, *shape) with the fraction of phase 1 per voxel.

    Raises:
        LoopError: Missing file or key, wrong shape or values (named by image index).
    """
    p = Path(path)
    if not p.is_file():
        raise LoopError(f"image file {p} not found", "check the path")
    suffix = p.suffix.lower()
    name = key or "images"
    if suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if name not in z:
                raise LoopError(
                    f"{p} has no array {name!r} (it has {sorted(z.files)})",
                    "pass the array's name as the key",
                )
            arr = z[name]
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "r") as f:
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise LoopError(
                    f"{p} has no dataset {name!r}", "pass the dataset's path inside the file"
                )
            arr = f[name][()]
    else:
        raise LoopError(f"{p}: unknown image file type {suffix!r}", "use .npy, .npz, .h5 or .hdf5")
    return _check_images(np.asarray(arr), str(p))


def save_dataset(path: Path | str, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    """Write a labelled set as .npz (attrs as a JSON string) or HDF5 (attrs as attributes)."""
    import json

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v, compression="gzip" if v.ndim > 2 else None)
            for k, v in attrs.items():
                f.attrs[k] = json.dumps(v)
    elif p.suffix.lower() == ".npz":
        np.savez_compressed(p, **arrays, attrs=np.array(json.dumps(attrs)))
    else:
        raise LoopError(f"{p}: unknown data set file type", "name the output .npz or .h5")


def load_dataset(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what `save_dataset` wrote."""
    import json

    p = Path(path)
    if not p.is_file():
        raise LoopError(f"data set {p} not found", "check the path")
    if p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "r") as f:
            arrays = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
            attrs = {k: json.loads(v) for k, v in f.attrs.items()}
        return arrays, attrs
    with np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "attrs"}
        attrs = json.loads(str(z["attrs"])) if "attrs" in z.files else {}
    return arrays, attrs


def labelled_set(
    n: int,
    size: int,
    *,
    dim: int = 3,
    contrast: float = 10.0,
    poisson_ratio: float = 0.3,
    volume_fraction: tuple[float, float] = (0.2, 0.6),
    length: tuple[float, float] = (1.0, 4.0),
    anisotropic: bool = True,
    physics: str = "elastic",
    seed: int = 0,
    device: str = "cpu",
    tol: float = 1e-6,
    columns: Sequence[int] | None = None,
    progress: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`n` random microstructures and their effective properties, for training surrogates.

    Each sample draws its volume fraction and correlation lengths (one per axis when
    `anisotropic`, else one for all) uniformly from the given ranges and its kernel angle
    from [0, 180) degrees. Phase 0 has E = 1 (conductivity 1), phase 1 E = `contrast`
    (conductivity `contrast`), both with `poisson_ratio`.

    `columns` (0-based load cases) limits the solve to those columns of the tensor; the paper's
    single target C11 needs one load case, a sixth of the work of the whole stiffness.

    Returns:
        Arrays `images` (n, *shape, uint8), `tensors` (n, s, s, or n, s, len(columns): Mandel
        stiffness or conductivity), `params` (n, 2 + dim: volume fraction, lengths..., angle),
        `iterations` (n,), `seconds` (n,), and the attributes that made them.

    Raises:
        LoopError: Bad sizes or ranges.
    """
    import time

    from loop.homogenize import Phase, homogenize

    if n < 1 or size < 4:
        raise LoopError(f"need n >= 1 and size >= 4, got n={n}, size={size}", "e.g. --n 100")
    if not contrast > 0:
        raise LoopError(f"contrast must be positive, got {contrast}", "e.g. --contrast 10")
    lo, hi = volume_fraction
    if not 0 < lo <= hi < 1:
        raise LoopError(f"volume fraction range {volume_fraction} must lie in (0, 1)", "0.2,0.6")
    if not 0 < length[0] <= length[1]:
        raise LoopError(f"length range {length} must be positive and ordered", "e.g. 1,4")
    phases = (
        Phase(1.0, poisson_ratio, 1.0),
        Phase(float(contrast), poisson_ratio, float(contrast)),
    )
    rng = np.random.default_rng(seed)
    shape = (size,) * dim
    images = np.zeros((n, *shape), dtype=np.uint8)
    s = (6 if dim == 3 else 3) if physics == "elastic" else dim
    tensors = np.zeros((n, s, s if columns is None else len(columns)))
    params = np.zeros((n, 2 + dim))
    iters = np.zeros(n, dtype=np.int64)
    secs = np.zeros(n)
    for i in range(n):
        vf = rng.uniform(lo, hi)
        ells = rng.uniform(length[0], length[1], size=dim if anisotropic else 1)
        if not anisotropic:
            ells = np.repeat(ells, dim)
        angle = rng.uniform(0.0, 180.0)
        p = GRFParams(
            float(vf), tuple(float(x) for x in ells), float(angle), int(rng.integers(2**31))
        )
        t = time.perf_counter()
        img = microstructure(shape, p)
        res = homogenize(
            img,
            phases,
            physics,  # type: ignore[arg-type]
            tol=tol,
            device=device,
            columns=columns,
        )
        secs[i] = time.perf_counter() - t
        images[i], tensors[i], iters[i] = img, res.tensor, res.iterations
        params[i] = [img.mean(), *ells, angle]
        if progress is not None:
            progress(i + 1, n)
    attrs = {
        "n": n,
        "size": size,
        "dim": dim,
        "contrast": contrast,
        "poisson_ratio": poisson_ratio,
        "volume_fraction": list(volume_fraction),
        "length": list(length),
        "anisotropic": anisotropic,
        "physics": physics,
        "seed": seed,
        "tol": tol,
        "columns": list(range(s)) if columns is None else [int(c) for c in columns],
        "notation": "Mandel, 11 22 33 12 23 13 (3-D) / 11 22 12 (2-D)"
        if physics == "elastic"
        else "conductivity matrix",
        "params_columns": ["volume_fraction", *[f"length_{a}" for a in "xyz"[:dim]], "angle"],
    }
    return {
        "images": images,
        "tensors": tensors,
        "params": params,
        "iterations": iters,
        "seconds": secs,
    }, attrs


def pack_image(image: np.ndarray) -> str:
    """A binary image as text: its shape, a colon, and its bits (row-major) in base64."""
    import base64

    arr = np.asarray(image)
    bits = np.packbits((arr > 0.5).astype(np.uint8).reshape(-1))
    return "x".join(str(n) for n in arr.shape) + ":" + base64.b64encode(bits.tobytes()).decode()


def unpack_image(text: str) -> np.ndarray:
    """The uint8 image `pack_image` wrote.

    Raises:
        LoopError: Text that is not a packed image.
    """
    import base64
    import binascii

    try:
        head, _, body = str(text).partition(":")
        shape = tuple(int(n) for n in head.split("x"))
        bits = np.frombuffer(base64.b64decode(body, validate=True), dtype=np.uint8)
        n = int(np.prod(shape))
        if not shape or bits.size * 8 < n:
            raise ValueError
        return np.unpackbits(bits)[:n].reshape(shape)
    except (ValueError, binascii.Error):
        raise LoopError(
            f"{str(text)[:40]!r} is not a packed microstructure image",
            "proposals of [latent] campaigns carry their image; measure those proposals",
        ) from None
