"""The homogenization simulator: options, spec checks, and a campaign run by a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loop.errors import LoopError
from loop.simulators import make_simulator
from loop.simulators.homogenization import HomogenizationSimulator
from loop.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "microstructure_stiffness.toml"


def _spec(objectives: list[str], options: dict[str, Any]) -> Any:
    return parse_spec(
        {
            "name": "ms",
            "budget": 10,
            "parameters": [
                {"type": "float", "name": "vf", "low": 0.2, "high": 0.5},
                {"type": "float", "name": "length_z", "low": 1.0, "high": 5.0},
            ],
            "objectives": [{"name": o} for o in objectives],
            "simulator": {"name": "homogenization", "options": options},
        }
    )


def test_outputs_follow_the_physics() -> None:
    spec = _spec(
        ["E_z", "k_zz", "specific_E_z"],
        {
            "size": 8,
            "parameters": {"volume_fraction": "vf"},
            "phases": [
                {"youngs_modulus": 1.0, "conductivity": 1.0, "density": 1.0},
                {"youngs_modulus": 8.0, "conductivity": 4.0, "density": 3.0},
            ],
        },
    )
    sim = make_simulator(spec)
    assert isinstance(sim, HomogenizationSimulator)
    a = sim.measure({"vf": 0.2, "length_z": 3.0}, np.random.default_rng(0))
    b = sim.measure({"vf": 0.5, "length_z": 3.0}, np.random.default_rng(0))
    assert set(a) == {"E_z", "k_zz", "specific_E_z"}
    assert 1.0 < a["E_z"] < b["E_z"] < 8.0 and 1.0 < a["k_zz"] < b["k_zz"] < 4.0
    assert a["specific_E_z"] == pytest.approx(a["E_z"] / (0.8 + 0.2 * 3.0), rel=0.02)
    again = sim.measure({"vf": 0.2, "length_z": 3.0}, np.random.default_rng(0))
    assert again == a  # the random field's seed comes from the run's generator


def test_spec_checks_name_the_problem() -> None:
    with pytest.raises(LoopError, match=r"cannot answer \['toughness'\]"):
        make_simulator(_spec(["toughness"], {}))
    with pytest.raises(LoopError, match="does not have"):
        make_simulator(_spec(["E_z"], {"parameters": {"angle": "theta"}}))
    with pytest.raises(LoopError, match="unknown option"):
        make_simulator(_spec(["E_z"], {"grid": 8}))
    with pytest.raises(LoopError, match="phase 1 has unknown key"):
        make_simulator(_spec(["E_z"], {"phases": [{}, {"E": 3}]}))
    with pytest.raises(LoopError, match="Poisson"):
        make_simulator(_spec(["E_z"], {"phases": [{}, {"poisson_ratio": 0.6}]}))
    with pytest.raises(LoopError, match="does not compute in 2-D"):
        make_simulator(_spec(["E_y"], {"dim": 2, "outputs": {"E_y": "E_z"}}))


def test_the_example_campaign_runs_through_a_worker(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loop.cli import app

    db = tmp_path / "ms.db"
    run = CliRunner()
    base = ["--db", str(db)]
    assert run.invoke(app, [*base, "campaign", "create", str(EXAMPLE)]).exit_code == 0
    res = run.invoke(
        app, [*base, "run", "microstructure_stiffness", "--via", "worker", "--budget", "8"]
    )
    assert res.exit_code == 0, res.output
    out = run.invoke(app, [*base, "export", "microstructure_stiffness", "--json"])
    assert out.exit_code == 0, out.output
    import json

    rows = json.loads(out.output)
    rows = rows if isinstance(rows, list) else rows["measurements"]
    assert len(rows) == 8
    # E of a 30% mix of E = 1 and 10 lies between the Reuss and Voigt values
    for r in rows:
        e = r["E_z"] if "E_z" in r else r["objectives"]["E_z"]
        assert 1 / (0.7 + 0.3 / 10) < e < 0.7 + 0.3 * 10
    # the report draws the designs, regenerated from their parameters
    rep = run.invoke(app, [*base, "report", "microstructure_stiffness", "--json"])
    assert rep.exit_code == 0, rep.output
    sec = json.loads(rep.output)["sections"]["microstructures"]
    assert sec["source"] == "generator, seed 0" and len(sec["best"]) == 4


def test_a_2d_campaign_gets_2d_quantities() -> None:
    spec = _spec(
        ["E_y", "k_xx"],
        {"size": 16, "dim": 2, "parameters": {"volume_fraction": "vf", "length_y": "length_z"}},
    )
    sim = make_simulator(spec)
    img = sim.image({"vf": 0.3, "length_z": 4.0}, seed=3)
    assert img.shape == (16, 16) and abs(img.mean() - 0.3) < 1 / 256
    v = sim.measure({"vf": 0.3, "length_z": 4.0}, np.random.default_rng(1))
    assert 1.0 < v["E_y"] < 10.0 and 1.0 < v["k_xx"] < 10.0
    with pytest.raises(LoopError, match="does not compute in 2-D"):
        make_simulator(_spec(["E_z"], {"dim": 2, "outputs": {"E_z": "E_z"}}))
