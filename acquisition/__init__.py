"""BoTorch acquisition functions by name, and optimizers for pools and boxes."""

from __future__ import annotations

from acquisition.optimize import optimize_box, optimize_pool
from acquisition.pool import PoolSelection, UnsupportedPoolAcquisition, select_from_pool
from acquisition.registry import (
    ACQUISITIONS,
    AcquisitionContext,
    UnknownAcquisitionError,
    build_acquisition,
    check_acquisition,
    register_acquisition,
)

__all__ = [
    "ACQUISITIONS",
    "AcquisitionContext",
    "UnknownAcquisitionError",
    "build_acquisition",
    "check_acquisition",
    "register_acquisition",
    "optimize_box",
    "optimize_pool",
    "select_from_pool",
    "PoolSelection",
    "UnsupportedPoolAcquisition",
]
