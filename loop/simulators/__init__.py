"""Simulators: oracles that answer proposals, for demos, tests and planner benchmarks.

Importing this package registers every built-in simulator in `SIMULATORS`.
"""

from __future__ import annotations

from loop.simulators.base import SIMULATORS, Simulator, make_simulator, register_simulator
from loop.simulators.chgnet import CHGNetOptions, CHGNetSimulator, load_chgnet
from loop.simulators.dataset import DatasetOptions, DatasetSimulator, InputKey, input_key
from loop.simulators.homogenization import HomogenizationSimulator

__all__ = [
    "SIMULATORS",
    "Simulator",
    "make_simulator",
    "register_simulator",
    "CHGNetOptions",
    "CHGNetSimulator",
    "load_chgnet",
    "HomogenizationSimulator",
    "DatasetOptions",
    "DatasetSimulator",
    "InputKey",
    "input_key",
]
