"""`loop benchmark`: a short real run on the smallest Liang set, merging, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
PEROVSKITE = ROOT / "examples" / "benchmarks" / "perovskite.toml"


def test_two_seed_run_on_the_smallest_set(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = tmp_path / "bench"
    rows = cli.json(
        "benchmark", "campaign", PEROVSKITE, "-s", "random,default", "--seeds", "2", "-o", out
    )
    by = {r["strategy"]: r for r in rows}
    assert set(by) == {"random", "default"}
    for r in rows:
        assert r["dataset"] == "perovskite" and r["seeds"] == 2
        assert r["n_pool"] == 94 and r["n_targets"] == 5
        assert 3 <= r["experiments"]["mean"] <= 47  # stops at 80% found or half the pool
    assert by["default"]["proposals_per_s"] > 0
    assert by["random"]["proposals_per_s"] is None  # random proposes nothing worth timing
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "loop-benchmark/1"
    runs = [r for r in doc["runs"] if r["strategy"] == "default"]
    # every seed starts from the same two random points as random search, and repeats nothing
    rand = {r["seed"]: r["order"][:2] for r in doc["runs"] if r["strategy"] == "random"}
    for r in runs:
        assert r["order"][:2] == rand[r["seed"]]
        assert len(set(r["order"])) == len(r["order"])
        assert r["stopped"] in ("found", "max_experiments")
        # the engine picked one candidate per round after the initial points
        assert len(r["seconds"]) == len(r["order"]) - 2
    md = (out / "results.md").read_text()
    assert "| perovskite | default | 2 |" in md and "| perovskite | random | 2 |" in md
    for png in ("top.png", "ef.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # the saved results rebuild the same table, and two disjoint runs merge
    again = cli.json("benchmark", "report", out / "results.json", "-o", tmp_path / "again")
    assert again == rows
    out2 = tmp_path / "bench2"
    cli(
        "benchmark",
        "campaign",
        PEROVSKITE,
        "-s",
        "random",
        "--seeds",
        "2",
        "--first-seed",
        "2",
        "-o",
        out2,
    )
    merged = cli.json(
        "benchmark", "report", out / "results.json", out2 / "results.json", "-o", tmp_path / "m"
    )
    assert {r["strategy"]: r["seeds"] for r in merged} == {"random": 4, "default": 2}
    msg = cli.fails("benchmark", "report", out / "results.json", out / "results.json")
    assert "appears in two results files" in msg


def test_bad_spec_and_strategy_are_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,3\n2,3,4\n")
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'name = "bad"\npath = "t.csv"\n[[inputs]]\ncolumn = "a"\n[[inputs]]\ncolumn = "c"\n'
        '[objective]\ncolumn = "y"\n'
    )
    msg = cli.fails("benchmark", "campaign", spec, "--seeds", "1", "-o", tmp_path / "o")
    assert "no column 'c'" in msg and "inputs[1].column" in msg and "'a', 'b', 'y'" in msg
    assert not (tmp_path / "o").exists()
    msg = cli.fails("benchmark", "campaign", PEROVSKITE, "-s", "gp-magic", "-o", tmp_path / "o")
    assert "unknown benchmark strategy 'gp-magic'" in msg and "gp-qucb" in msg
    msg = cli.fails("benchmark", "campaign", tmp_path / "missing.toml", "-o", tmp_path / "o")
    assert "does not exist" in msg


def test_neural_strategies_run_through_the_engine(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = tmp_path / "nn"
    rows = cli.json(
        "benchmark", "campaign", PEROVSKITE, "-s", "ensemble-qucb,dropout-qucb",
        "--seeds", "1", "--max-fraction", "0.06", "-o", out,
    )  # fmt: skip
    assert {r["strategy"] for r in rows} == {"ensemble-qucb", "dropout-qucb"}
    doc = json.loads((out / "results.json").read_text())
    for r in doc["runs"]:
        n = len(r["order"])
        assert len(set(r["order"])) == n and 3 <= n <= 6  # at most 6% of 94, none repeated
        assert len(r["seconds"]) == n - 2  # one model round per experiment after the first two
