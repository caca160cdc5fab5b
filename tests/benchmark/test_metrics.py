"""Benchmark metrics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loop.benchmark.metrics import (
    acceleration_factor,
    enhancement_curve,
    experiments_to_reach,
    first_hit,
    mean_interval,
    random_top,
    top_curve,
)


def test_top_curve_counts_targets_and_carries_forward() -> None:
    # targets 1 and 2 of a pool; found at the 2nd and 4th experiment; the run stopped after 4
    curve = top_curve([3, 1, 7, 2], [1, 2], 6)
    assert curve.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0, 1.0]


def test_random_baseline_is_i_over_n() -> None:
    assert random_top(10, 3).tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert random_top(4, 6).tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_enhancement_divides_by_random() -> None:
    ef = enhancement_curve(np.array([0.0, 0.5, 0.5, 1.0]), 10)
    # 0.5 / (2/10) = 2.5, 0.5 / (3/10) = 1.667, 1.0 / (4/10) = 2.5
    assert ef.tolist() == pytest.approx([0.0, 2.5, 5 / 3, 2.5])


def test_experiments_to_reach_a_level() -> None:
    targets = [1, 2, 5, 9, 11]  # 5 targets: 80% means 4 found
    order = [0, 1, 3, 2, 4, 5, 6, 9]
    assert experiments_to_reach(order, targets, 0.8) == 8
    assert experiments_to_reach(order, targets, 0.5) == 6  # 2.5 targets -> the 3rd, at 6
    assert experiments_to_reach(order, targets, 0.2) == 2
    assert experiments_to_reach(order[:7], targets, 0.8) is None


def test_acceleration_factor_and_its_interval() -> None:
    # random needs 0.5 * 100 = 50 experiments; seeds needed 10, 12, 14 (mean 12, sd 2)
    af = acceleration_factor([10, 12, 14], 100, 0.5)
    assert af is not None
    assert af.mean == pytest.approx(50 / 12)
    half = 4.303 * 2 / math.sqrt(3)  # t(0.975, 2 dof) * sd / sqrt(n)
    assert af.low == pytest.approx(50 / (12 + half))
    assert af.high == pytest.approx(50 / (12 - half))
    assert af.n == 3


def test_acceleration_factor_not_reached_is_not_extrapolated() -> None:
    assert acceleration_factor([10, None, 14], 100, 0.8) is None
    assert acceleration_factor([], 100, 0.8) is None


def test_first_hit() -> None:
    assert first_hit([4, 8, 2, 6], [6, 2]) == 3
    assert first_hit([4, 8], [6]) is None


def test_mean_interval() -> None:
    iv = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182 * math.sqrt(5 / 3) / 2  # t(0.975, 3) * sd / sqrt(4)
    assert iv.mean == pytest.approx(2.5)
    assert iv.high == pytest.approx(2.5 + half)
    assert iv.low == pytest.approx(max(0.0, 2.5 - half))
    single = mean_interval([7.0])
    assert (single.mean, single.low, single.high, single.n) == (7.0, 7.0, 7.0, 1)
    # non-negative data never get a negative lower bound
    assert mean_interval([0.0, 10.0]).low == 0.0
    assert mean_interval([-1.0, 1.0]).low < 0
