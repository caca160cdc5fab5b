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
    field = np.fft.irfftn(np.fft.rfftn(noise) * np.exp(-0.5 * arg), s=shape)
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
