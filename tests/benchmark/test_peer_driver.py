"""The peer driver against the real BayBE and Ax, where a Python with them is named.

The peers are an optional extra (`pip install ".[bench]"`), so this runs where
`LOOP_PEER_PYTHON` names a Python that has baybe and ax-platform (or where this one has them).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from loop.benchmark.dataset import load_dataset
from loop.benchmark.runner import STRATEGIES, Protocol, initial_points, run_seed

ROOT = Path(__file__).resolve().parents[2]


def _peer_python() -> str:
    env = os.environ.get("LOOP_PEER_PYTHON")
    if env:
        return env
    if importlib.util.find_spec("baybe") and importlib.util.find_spec("ax"):
        return sys.executable
    pytest.skip("no Python with baybe and ax-platform: set LOOP_PEER_PYTHON or install .[bench]")


@pytest.mark.parametrize("peer", ["baybe", "ax"])
def test_peer_runs_a_seed_on_the_pool(peer: str, tmp_path: Path) -> None:
    python = _peer_python()
    d = load_dataset(ROOT / "examples" / "benchmarks" / "perovskite.toml")
    # a short run: stop after 8 experiments, so the slow Ax default stays quick
    protocol = Protocol(seeds=1, max_fraction=8 / d.n)
    rec = run_seed(d, STRATEGIES[peer], 3, protocol, peer_python=python)
    assert rec.order[:2] == initial_points(d, 3, 2)
    assert len(rec.order) == len(set(rec.order)) >= 8
    assert all(0 <= i < d.n for i in rec.order)
    assert rec.versions.get(peer if peer == "baybe" else "ax-platform")
    assert len(rec.seconds) >= 1
