"""`loop benchmark latent-loop`: BO in a tiny GAN's latent box against random latent vectors and
random GRF microstructures, two seeds and a tiny budget; the outputs are checked against each
other and against the simulator, not timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loop.benchmark.latent_loop import ARMS, paired_gain
from loop.cli import app
from loop.microgen import unpack_image
from loop.simulators.homogenization import HomogenizationSimulator

SPEC = """\
name = "latent_bench"
budget = 20
batch_size = 2
initial_design = 2

[latent]
gan = "wrong"
size = 2

[[objectives]]
name = "k_xx"
direction = "maximize"

[model]
surrogate = "gp"

[simulator]
name = "homogenization"
options = { phases = [{ conductivity = 1.0 }, { conductivity = 10.0 }] }
"""


def _invoke(db: Path, *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(app, ["--db", str(db), *args])
    assert res.exit_code == code, res.output
    return res.output


def test_paired_gain_t_interval() -> None:
    g = paired_gain([1.1, 1.2, 1.3], [1.0, 1.0, 1.0])
    assert g["mean"] == pytest.approx(0.2) and g["n"] == 3
    half = 4.302652729911275 * 0.1 / 3**0.5  # t(0.975, 2) * sd / sqrt(n)
    assert g["ci95"] == pytest.approx([0.2 - half, 0.2 + half])
    low = paired_gain([1.0, None, 2.0], [2.0, 1.0, 4.0], maximize=False)
    assert low["gains"] == pytest.approx([1.0, 1.0]) and low["left_out"] == 1


def test_latent_loop_writes_consistent_results(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    tiny = ["--name", "tiny", "--n", "32", "--latent", "2", "--filters", "4,4", "--steps", "5"]
    _invoke(db, "surrogate", "train-gan", *tiny)
    spec = tmp_path / "lat.toml"
    spec.write_text(SPEC)
    out = tmp_path / "res"
    args = ["benchmark", "latent-loop", str(spec), "--gan", "tiny", "--seeds", "2"]
    _invoke(db, *args, "--budget", "6", "--out", str(out), code=2)  # no volume fraction
    args += ["--budget", "6", "--batch", "2", "--volume-fraction", "0.4", "--out", str(out)]
    text = _invoke(db, *args)
    doc = json.loads((out / "results.json").read_text())
    assert (out / "latent-loop.png").stat().st_size > 1000
    assert doc["budget"] == 6 and doc["image_size"] == 16 and len(doc["per_seed"]) == 2
    sim = HomogenizationSimulator(dim=2, outputs={"k_xx": "k_xx"})
    for row in doc["per_seed"]:
        assert any(s.startswith("gp+") for s in row["bo"]["strategies"])
        for arm in ARMS:
            r = row[arm]
            assert r["simulations"] == r["feasible"] == 6 and len(r["curve"]) == 6
            assert r["curve"][-1] == r["best"] == max(v for v in r["curve"])
            assert r["volume_fraction"] == pytest.approx(102 / 256)  # round(0.4 * 256) pixels
            img = unpack_image(r["best_image"])
            assert img.shape == (16, 16) and img.sum() == 102
            assert sim.properties(img)["k_xx"] == pytest.approx(r["best"], rel=1e-9)
    g = doc["gains"]["bo_over_random_latent"]
    expected = [r["bo"]["best"] / r["random_latent"]["best"] - 1 for r in doc["per_seed"]]
    assert g["gains"] == pytest.approx(expected) and g["ci95"][0] <= g["mean"] <= g["ci95"][1]
    assert f"{100 * g['mean']:+.1f}%" in text and "random_grf" in (out / "results.md").read_text()
    # the source store's GAN was copied, not moved: a second run still finds it
    spec.write_text(SPEC.replace('"wrong"', '"tiny"'))
    again = _invoke(
        db,
        "benchmark",
        "latent-loop",
        str(spec),
        "--seeds",
        "1",
        "--budget",
        "2",
        "--volume-fraction",
        "0.6",
        "--out",
        str(out),
        code=2,
    )
    assert "outside the range GAN 'tiny' was trained on" in again
