"""Benchmarks: replay real data sets as oracles and score planners on them; score surrogates.

`loop benchmark campaign SPEC...` runs strategies (random, the engine's model-based strategies and,
with the `bench` extra, BayBE and Ax) for many seeds and reports the Top%, enhancement and
acceleration factors of Liang et al. 2021 with 95% confidence intervals.

`loop benchmark surrogate --data FILE.csv --model rf --model gp ...` scores surrogates on a
composition table (accuracy and uncertainty quality, Tran et al. 2020) on identical splits.
Importing this package is cheap: the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loop.benchmark.composition_features import (
        ELEMENT_PROPERTIES,
        ElementTable,
        composition_features,
        element_table,
        feature_names,
        features_for,
    )
    from loop.benchmark.surrogate import (
        Prediction,
        SurrogateBenchmark,
        check_models,
        hardware,
        known_models,
        parse_option,
        plan_splits,
        run_surrogate_benchmark,
    )
    from loop.benchmark.surrogate_data import (
        CompositionTable,
        Split,
        load_composition_table,
        make_splits,
    )
    from loop.benchmark.surrogate_report import summary_rows, surrogate_markdown, surrogate_plots
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

__all__ = [
    # uq_metrics
    "mae",
    "rmse",
    "r2",
    "calibration_curve",
    "miscalibration_area",
    "gaussian_nll",
    "interval_coverage",
    "spearman_error_sigma",
    "regression_metrics",
    # composition_features
    "ELEMENT_PROPERTIES",
    "ElementTable",
    "element_table",
    "feature_names",
    "composition_features",
    "features_for",
    # surrogate_data
    "CompositionTable",
    "Split",
    "load_composition_table",
    "make_splits",
    # surrogate
    "SurrogateBenchmark",
    "Prediction",
    "known_models",
    "check_models",
    "parse_option",
    "hardware",
    "plan_splits",
    "run_surrogate_benchmark",
    # surrogate_report
    "summary_rows",
    "surrogate_markdown",
    "surrogate_plots",
]

_HOME = {
    **dict.fromkeys(__all__[:9], "uq_metrics"),
    **dict.fromkeys(__all__[9:15], "composition_features"),
    **dict.fromkeys(__all__[15:19], "surrogate_data"),
    **dict.fromkeys(__all__[19:27], "surrogate"),
    **dict.fromkeys(__all__[27:], "surrogate_report"),
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"loop.benchmark.{_HOME[name]}"), name)
    raise AttributeError(f"module 'loop.benchmark' has no attribute {name!r}")
