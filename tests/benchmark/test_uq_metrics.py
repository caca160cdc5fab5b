"""The uncertainty metrics against values worked out by hand, and on synthetic Gaussian samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loop.benchmark.uq_metrics import (
    calibration_curve,
    gaussian_nll,
    interval_coverage,
    mae,
    miscalibration_area,
    r2,
    regression_metrics,
    rmse,
    spearman_error_sigma,
)

# errors mu - y: 0, -1, 0, 2
Y = [0.0, 1.0, 2.0, 3.0]
MU = [0.0, 0.0, 2.0, 5.0]
ONE = [1.0, 1.0, 1.0, 1.0]


def test_accuracy_by_hand() -> None:
    assert mae(Y, MU) == pytest.approx(0.75)
    assert rmse(Y, MU) == pytest.approx(math.sqrt(1.25))
    # SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5 = SS_res
    assert r2(Y, MU) == pytest.approx(0.0)
    assert r2(Y, Y) == pytest.approx(1.0)
    assert math.isnan(r2([1.0, 1.0], [1.0, 2.0]))


def test_nll_and_coverage_by_hand() -> None:
    # 0.5 log(2 pi) + mean(e^2) / 2 = 0.5 log(2 pi) + (0 + 1 + 0 + 4) / 8
    assert gaussian_nll(Y, MU, ONE) == pytest.approx(0.5 * math.log(2 * math.pi) + 0.625)
    # sigma 2: + log 2, and the squared errors count a quarter
    assert gaussian_nll(Y, MU, [2.0] * 4) == pytest.approx(
        0.5 * math.log(2 * math.pi) + math.log(2.0) + 0.625 / 4
    )
    # z_0.95 = 1.645: |e| = 0, 1, 0 inside, 2 outside
    assert interval_coverage(Y, MU, ONE, 0.9) == pytest.approx(0.75)
    assert interval_coverage(Y, MU, [2.0] * 4, 0.9) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        interval_coverage(Y, MU, ONE, 1.0)


def test_miscalibration_area_by_hand() -> None:
    # two levels: p = 0.25 (z = 0.3186) and p = 0.75 (z = 1.1503); |e| / sigma = 0, 1, 0, 2
    p, observed = calibration_curve(Y, MU, ONE, levels=2)
    assert p.tolist() == [0.25, 0.75]
    assert observed.tolist() == [0.5, 0.75]
    assert miscalibration_area(Y, MU, ONE, levels=2) == pytest.approx(0.125)


def test_spearman_by_hand() -> None:
    # |e| ranks 1.5, 3, 1.5, 4 and sigma ranks 1, 3, 2, 4: r = 4.5 / sqrt(4.5 * 5)
    sigma = [0.1, 0.5, 0.2, 0.9]
    assert spearman_error_sigma(Y, MU, sigma) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman_error_sigma(Y, MU, sigma[::-1]) < 0
    assert math.isnan(spearman_error_sigma(Y, MU, ONE))  # a constant sigma ranks nothing


def test_calibrated_sample_has_a_small_area_and_an_overconfident_one_a_large_area() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    mu = rng.normal(size=n)
    sigma = rng.uniform(0.2, 2.0, size=n)
    y = mu + sigma * rng.normal(size=n)
    good = regression_metrics(y, mu, sigma)
    assert good["miscal_area"] < 0.01
    assert good["cov90"] == pytest.approx(0.9, abs=0.01)
    over = regression_metrics(y, mu, sigma / 3)
    assert over["miscal_area"] > 0.2
    assert over["cov90"] < 0.5
    assert over["nll"] > good["nll"]
    # sigma tracks the error scale here, so the rank correlation is clearly positive
    assert good["spearman"] > 0.2
    assert set(good) == {"mae", "rmse", "r2", "miscal_area", "nll", "spearman", "cov90"}


def test_zero_sigma_and_bad_shapes() -> None:
    assert math.isfinite(gaussian_nll([1.0], [1.0], [0.0]))  # floored, not a division by zero
    with pytest.raises(ValueError, match="differ in length"):
        mae([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no points"):
        rmse([], [])
