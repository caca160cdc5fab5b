"""Accuracy and uncertainty metrics of a regression surrogate on held-out data.

Pure functions of `n` true values `y`, predicted means `mu` and predicted standard deviations
`sigma` (all `n`-vectors). The uncertainty metrics follow Tran et al. 2020, "Methods for comparing
uncertainty quantifications for material property predictions" (Mach. Learn.: Sci. Technol. 1,
025006): a Gaussian predictive distribution `N(mu, sigma^2)` per point.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "SIGMA_FLOOR",
    "mae",
    "rmse",
    "r2",
    "calibration_curve",
    "miscalibration_area",
    "gaussian_nll",
    "interval_coverage",
    "spearman_error_sigma",
    "regression_metrics",
]

#: Standard deviations below this are raised to it in the NLL, the calibration curve and the
#: coverage, so a model that claims certainty is scored as very confident instead of dividing
#: by zero.
SIGMA_FLOOR = 1e-12


def _arrays(*xs: Any) -> list[np.ndarray]:
    out = [np.asarray(x, dtype=np.float64).reshape(-1) for x in xs]
    if len({a.size for a in out}) != 1:
        raise ValueError(f"arrays differ in length: {[a.size for a in out]}")
    if out[0].size == 0:
        raise ValueError("no points to score")
    return out


def mae(y: Any, mu: Any) -> float:
    """Mean absolute error."""
    y, mu = _arrays(y, mu)
    return float(np.mean(np.abs(y - mu)))


def rmse(y: Any, mu: Any) -> float:
    """Root mean squared error."""
    y, mu = _arrays(y, mu)
    return float(np.sqrt(np.mean((y - mu) ** 2)))


def r2(y: Any, mu: Any) -> float:
    """Coefficient of determination `1 - SS_res / SS_tot` (NaN when `y` is constant)."""
    y, mu = _arrays(y, mu)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return math.nan
    return 1.0 - float(np.sum((y - mu) ** 2)) / ss_tot


def _levels(levels: int) -> np.ndarray:
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    # midpoints of `levels` equal bins of (0, 1): never 0 or 1, where z is 0 or infinite
    return (np.arange(levels, dtype=np.float64) + 0.5) / levels


def calibration_curve(
    y: Any, mu: Any, sigma: Any, levels: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Expected against observed proportions of points inside central Gaussian intervals.

    For each expected proportion `p` (the midpoints of `levels` equal bins of (0, 1)), the observed
    proportion is the fraction of points with `|y - mu| <= z_{(1+p)/2} sigma`.

    Returns:
        `levels` expected proportions and `levels` observed proportions.
    """
    from scipy.stats import norm

    y, mu, sigma = _arrays(y, mu, sigma)
    p = _levels(levels)
    z = norm.ppf(0.5 + p / 2.0)  # `levels`
    score = np.abs(y - mu) / np.maximum(sigma, SIGMA_FLOOR)  # `n`
    observed = (score[None, :] <= z[:, None]).mean(axis=1)
    return p, observed


def miscalibration_area(y: Any, mu: Any, sigma: Any, levels: int = 100) -> float:
    """Mean `|observed - expected|` over the calibration curve (0 is perfect, 0.5 the worst)."""
    p, observed = calibration_curve(y, mu, sigma, levels)
    return float(np.mean(np.abs(observed - p)))


def gaussian_nll(y: Any, mu: Any, sigma: Any) -> float:
    """Mean Gaussian negative log-likelihood `0.5 log(2 pi sigma^2) + (y - mu)^2 / (2 sigma^2)`."""
    y, mu, sigma = _arrays(y, mu, sigma)
    s2 = np.maximum(sigma, SIGMA_FLOOR) ** 2
    return float(np.mean(0.5 * np.log(2.0 * math.pi * s2) + (y - mu) ** 2 / (2.0 * s2)))


def interval_coverage(y: Any, mu: Any, sigma: Any, level: float = 0.9) -> float:
    """Fraction of points inside the central `level` Gaussian interval `mu +- z sigma`."""
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    y, mu, sigma = _arrays(y, mu, sigma)
    z = float(norm.ppf(0.5 + level / 2.0))
    return float(np.mean(np.abs(y - mu) <= z * np.maximum(sigma, SIGMA_FLOOR)))


def spearman_error_sigma(y: Any, mu: Any, sigma: Any) -> float:
    """Spearman rank correlation of `|y - mu|` with `sigma` (NaN when `sigma` is constant).

    Positive when the model is less sure of the points it gets more wrong.
    """
    from scipy.stats import spearmanr

    y, mu, sigma = _arrays(y, mu, sigma)
    err = np.abs(y - mu)
    if np.ptp(sigma) == 0.0 or np.ptp(err) == 0.0:
        return math.nan
    return float(spearmanr(err, sigma).statistic)


def regression_metrics(y: Any, mu: Any, sigma: Any, levels: int = 100) -> dict[str, float]:
    """Every metric of this module in one dict.

    Keys: `mae`, `rmse`, `r2`, `miscal_area`, `nll`, `spearman`, `cov90`.
    """
    return {
        "mae": mae(y, mu),
        "rmse": rmse(y, mu),
        "r2": r2(y, mu),
        "miscal_area": miscalibration_area(y, mu, sigma, levels),
        "nll": gaussian_nll(y, mu, sigma),
        "spearman": spearman_error_sigma(y, mu, sigma),
        "cov90": interval_coverage(y, mu, sigma, 0.9),
    }
