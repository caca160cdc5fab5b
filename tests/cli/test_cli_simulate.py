"""`loop simulate microstructures`: a labelled set written to a file, and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from loop.cli import app
from loop.microgen import load_dataset


def test_simulate_microstructures_writes_a_labelled_set(tmp_path: Path) -> None:
    out = tmp_path / "set.h5"
    args = ["simulate", "microstructures", "--n", "4", "--size", "6", "--contrast", "50"]
    res = CliRunner().invoke(app, [*args, "--column", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote 4 microstructures (6^3, contrast 50, elastic)" in res.output
    arrays, attrs = load_dataset(out)
    assert arrays["images"].shape == (4, 6, 6, 6) and arrays["tensors"].shape == (4, 6, 1)
    assert attrs["contrast"] == 50 and attrs["columns"] == [2]
    assert ((arrays["tensors"][:, 2, 0] > 1) & (arrays["tensors"][:, 2, 0] < 50)).all()
    res = CliRunner().invoke(
        app,
        ["simulate", "microstructures", "--n", "2", "--size", "10", "--dim", "2"]
        + ["--physics", "thermal", "--isotropic", "-o", str(tmp_path / "t.npz"), "--json"],
    )
    assert res.exit_code == 0, res.output
    arrays, attrs = load_dataset(tmp_path / "t.npz")
    assert arrays["tensors"].shape == (2, 2, 2) and attrs["physics"] == "thermal"
    lengths = arrays["params"][:, 1:3]
    np.testing.assert_array_equal(lengths[:, 0], lengths[:, 1])


def test_simulate_microstructures_refusals(tmp_path: Path) -> None:
    base = ["simulate", "microstructures", "--n", "2"]
    for extra, message in [
        (["--dim", "4", "-o", str(tmp_path / "a.npz")], "--dim 4 must be 2 or 3"),
        (["-o", str(tmp_path / "a.csv")], "unknown file type"),
        (["--volume-fraction", "0.2,x", "-o", str(tmp_path / "a.npz")], "is not LOW,HIGH"),
        (["--volume-fraction", "0.7,0.2", "-o", str(tmp_path / "a.npz")], "must lie in (0, 1)"),
        (["--column", "9", "-o", str(tmp_path / "a.npz")], "load-case indices"),
    ]:
        res = CliRunner().invoke(app, [*base, *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert message in res.output, (extra, res.output)
    assert not list(tmp_path.iterdir())
