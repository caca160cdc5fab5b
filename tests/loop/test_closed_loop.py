"""A closed loop through the CLI on the real P3HT pool, the shared data set as the oracle."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from loop.cli import app
from loop.simulators import DatasetSimulator

INPUTS = {
    "p3ht": "P3HT content (%)",
    "d1": "D1 content (%)",
    "d2": "D2 content (%)",
    "d6": "D6 content (%)",
    "d8": "D8 content (%)",
}
EXPERIMENTS = 30
SEEDS = range(5)


def test_gp_qlognei_beats_random_on_p3ht(tmp_path: Path, p3ht_spec: Path, liang_p3ht: Path) -> None:
    oracle = DatasetSimulator.from_options(
        {
            "path": str(liang_p3ht),
            "inputs": INPUTS,
            "outputs": {"conductivity": "Conductivity (measured) (S/cm)"},
            "replicates": "mean",
        }
    )
    top = oracle.top_fraction_keys(0.05, objective="conductivity", direction="maximize")
    assert len(oracle) == 178 and len(top) == math.ceil(0.05 * 178)
    runner = CliRunner()
    db = ["--db", f"sqlite:///{tmp_path / 'loop.db'}", "--artifacts", str(tmp_path / "art")]
    shares = []
    for seed in SEEDS:
        name = f"p3ht-{seed}"
        r = runner.invoke(app, [*db, "campaign", "create", str(p3ht_spec), "--name", name])
        assert r.exit_code == 0, r.output
        measured: list[tuple[float, ...]] = []
        rng = np.random.default_rng(seed)
        while len(measured) < EXPERIMENTS:
            n = min(4, EXPERIMENTS - len(measured))
            r = runner.invoke(
                app, [*db, "propose", name, "-n", str(n), "--seed", str(seed), "--json"]
            )
            assert r.exit_code == 0, r.output
            batch = json.loads(r.stdout)["proposals"]
            assert len(batch) == n
            lines = []
            for p in batch:
                key = oracle.key(p["params"])
                assert key not in measured, "a measured candidate was proposed again"
                measured.append(key)
                lines.append(
                    json.dumps({"proposal_id": p["id"], **oracle.measure(p["params"], rng)})
                )
            r = runner.invoke(
                app, [*db, "ingest", name, "-", "--json"], input="\n".join(lines) + "\n"
            )
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["stored"] == n
        shares.append(len(top & set(measured)) / len(top))
    random_share = EXPERIMENTS / len(oracle)
    mean_share = float(np.mean(shares))
    print(
        f"top-5% share after {EXPERIMENTS}: {shares} mean {mean_share:.3f}, "
        f"random {random_share:.3f}"
    )
    assert mean_share >= 1.5 * random_share, (shares, random_share)
