"""Statistics of two-phase microstructure images: volume fraction, two-point correlation and
lineal-path function, for comparing generated microstructures with their training set.

All functions take phase-1 fields `n x H x W` (or `n x H x W x D`) with values in [0, 1] and
treat the images as periodic. `two_point_correlation` is differentiable (the GAN's statistics
loss uses it).
"""

from __future__ import annotations

import torch

__all__ = [
    "two_point_correlation",
    "radial_average",
    "lineal_path",
    "curve_distance",
]


def two_point_correlation(phase: torch.Tensor) -> torch.Tensor:
    """Periodic S2(r) = <m(x) m(x + r)> for every shift r, by FFT (`n x H x W`); S2 at r = 0
    is the volume fraction."""
    dims = tuple(range(1, phase.dim()))
    f = torch.fft.rfftn(phase, dim=dims)
    s2 = torch.fft.irfftn(f * f.conj(), s=phase.shape[1:], dim=dims)
    n = 1
    for s in phase.shape[1:]:
        n *= s
    return s2 / n


def radial_average(s2: torch.Tensor, r_max: int | None = None) -> torch.Tensor:
    """S2 averaged over shifts of equal rounded length |r| (periodic distances), `n x R`."""
    shape = s2.shape[1:]
    grids = torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij")
    dist2 = sum(torch.minimum(g, s - g).double() ** 2 for g, s in zip(grids, shape, strict=True))
    r = torch.sqrt(dist2).round().long().reshape(-1)
    r_max = int(min(shape) // 2) if r_max is None else r_max
    flat = s2.reshape(s2.shape[0], -1)
    out = torch.zeros(s2.shape[0], r_max + 1, dtype=s2.dtype)
    for k in range(r_max + 1):
        sel = r == k
        out[:, k] = flat[:, sel].mean(1)
    return out


def lineal_path(phase: torch.Tensor, axis: int = 0, r_max: int | None = None) -> torch.Tensor:
    """L(r): the chance that a segment of r + 1 pixels along `axis` (0 = first image axis) lies
    wholly in phase 1, for r = 0 .. r_max (`n x (r_max + 1)`); L(0) is the volume fraction."""
    dim = 1 + axis
    r_max = phase.shape[dim] // 2 if r_max is None else r_max
    m = (phase > 0.5).to(torch.float64)
    run = m.clone()
    out = [run.reshape(m.shape[0], -1).mean(1)]
    for r in range(1, r_max + 1):
        run = run * torch.roll(m, shifts=-r, dims=dim)
        out.append(run.reshape(m.shape[0], -1).mean(1))
    return torch.stack(out, dim=1)


def curve_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Root-mean-square difference of two mean curves (each `n x R`, averaged over n first)."""
    return float(((a.double().mean(0) - b.double().mean(0)) ** 2).mean().sqrt())
