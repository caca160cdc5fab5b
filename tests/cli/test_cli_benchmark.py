"""`loop benchmark`: a short real run on the smallest Liang set, merging, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


OQMD_SAMPLE = ROOT / "tests" / "data" / "mp_e_form_300.csv"


def test_propose_latency_grid_matches_botorch_on_an_ensemble(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = tmp_path / "prop"
    doc = cli.json(
        "benchmark", "propose", "--space", "composition", "--data", OQMD_SAMPLE,
        "--option", "members=3", "--option", "hidden=[32,32]", "--option", "epochs=20",
        "--pools", "300,600", "--batches", "1,3", "--measurements", "40", "--out", out,
        "--json",
    )  # fmt: skip
    rows = doc["rows"]
    assert [(r["pool"], r["q"]) for r in rows] == [(300, 1), (300, 3), (600, 1), (600, 3)]
    for r in rows:
        assert r["same_batch"] is True and r["scored"] == r["pool"]
        assert r["select_seconds"] > 0 and r["botorch_seconds"] > 0
        assert r["warm_fit_seconds"] is not None
    md = (out / "results.md").read_text()
    assert "| composition | ensemble | qlognei | 40 | 600 | 3 |" in md


def test_propose_latency_on_a_gp_and_the_continuous_box(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    doc = cli.json(
        "benchmark", "propose", "--space", "box", "--surrogate", "gp", "--pools", "400",
        "--batches", "2", "--measurements", "12", "--json",
    )  # fmt: skip
    (row,) = doc["rows"]
    assert row["botorch_seconds"] is not None and row["samples"] == 256
    if not row["same_batch"]:  # Monte Carlo draws differ: both batches are scored alike
        assert abs(row["batch_value"] - row["botorch_batch_value"]) < 0.5
    cont = cli.json(
        "benchmark", "propose", "--space", "box", "--surrogate", "gp", "--continuous",
        "--batches", "1", "--measurements", "15", "--repeats", "2", "--json",
    )  # fmt: skip
    (c,) = cont["continuous"]
    assert (c["d"], c["n"], c["q"], c["repeats"]) == (6, 15, 1, 2)
    assert c["round_seconds"] >= c["select_seconds"] > 0
    err = cli.fails("benchmark", "propose", "--space", "composition")
    assert "--data" in err
    err = cli.fails("benchmark", "propose", "--space", "box", "--pools", "ten")
    assert "--pools" in err


def test_benchmark_service_runs_queue_and_round_trips(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loop.cli import app as loop_app

    out = tmp_path / "svc"
    res = CliRunner().invoke(
        loop_app,
        [
            "benchmark",
            "service",
            "--jobs",
            "6",
            "--workers",
            "1,2",
            "--rounds",
            "3",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    modes = [(r["mode"], r["workers"]) for r in doc["queue"]]
    assert modes == [
        ("in-process ingest (baseline)", 1),
        ("worker processes", 1),
        ("worker processes", 2),
    ]
    assert all(r["jobs"] == 6 and r["seconds"] > 0 for r in doc["queue"])
    ops = {(r["operation"], r["via"]) for r in doc["round_trips"]}
    assert ("claim + complete", "http") in ops and ("ingest one row", "in-process") in ops
    assert (out / "results.md").read_text().startswith("Queue: 6 jobs")


def test_benchmark_report_times_each_section(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loop.cli import app as loop_app

    out = tmp_path / "rep"
    res = CliRunner().invoke(
        loop_app,
        [
            "benchmark",
            "report-time",
            "--measurements",
            "30",
            "--rounds",
            "1",
            "--surrogate",
            "gp",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["measurements"] == 38 and row["fits"] == 1
    assert {"summary", "progress", "diagnostics", "decisions", "space", "representation"} <= set(
        row["section_seconds"]
    )
    assert row["cli_seconds"] > 0 and row["html_bytes"] > 10_000


def test_benchmark_structures_scores_cgcnn_on_a_cif_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loop.cli import app as loop_app

    data = Path(__file__).resolve().parents[2].parent / "shared/data/structures/perov_5/val.csv"
    if not data.is_file():
        import pytest

        pytest.skip(f"{data} is not here")
    res = CliRunner().invoke(
        loop_app,
        [
            "benchmark",
            "structures",
            str(data),
            "--limit",
            "60",
            "--members",
            "2",
            "--budget",
            "2",
            "--epochs",
            "3",
            "--schedule",
            "budget",
            "--optimizer",
            "sgd",
            "--lr",
            "0.01",
            "--out",
            str(tmp_path / "s"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["rows"], doc["train"], doc["test"]) == (60, 48, 12)
    assert doc["cgcnn_training"] == {
        "lr": 0.01,
        "batch_size": 64,
        "schedule": "budget",
        "optimizer": "sgd",
    }
    for name in ("cgcnn-ensemble", "elemnet-ensemble"):
        m = doc["models"][name]
        assert m["mae"] > 0 and 0 <= m["cov90"] <= 1
    assert len(doc["models"]["cgcnn-ensemble"]["training"][0]) == 2
    bad = CliRunner().invoke(loop_app, ["benchmark", "structures", str(data), "--target", "nope"])
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output
    bad = CliRunner().invoke(loop_app, ["benchmark", "structures", str(data), "--optimizer", "x"])
    assert bad.exit_code == 2 and "optimizer must be 'adamw' or 'sgd'" in bad.output


def test_benchmark_structures_cross_validates_a_pymatgen_json_table(tmp_path: Path) -> None:
    """matbench_phonons (pandas split JSON of pymatgen dicts): every row predicted once."""
    from typer.testing import CliRunner

    from loop.cli import app as loop_app

    data = (
        Path(__file__).resolve().parents[2].parent
        / "shared/data/structures/matbench_phonons/matbench_phonons.json.gz"
    )
    if not data.is_file():
        import pytest

        pytest.skip(f"{data} is not here")
    args = ["benchmark", "structures", str(data), "--target", "last phdos peak", "--limit", "45"]
    args += ["--members", "2", "--budget", "1", "--epochs", "2", "--folds", "3", "--json"]
    res = CliRunner().invoke(loop_app, args + ["--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["rows"], doc["train"], doc["test"], doc["folds"]) == (45, 30, 45, 3)
    for m in doc["models"].values():
        assert len(m["fold_mae"]) == 3
        assert m["fold_mae_mean"] == pytest_approx(sum(m["fold_mae"]) / 3)
        assert m["mae"] > 0
    assert "MAE per fold" in (tmp_path / "p" / "results.md").read_text()


def pytest_approx(v: float) -> object:
    import pytest

    return pytest.approx(v)


def test_benchmark_structure_loop_replays_a_closed_loop(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loop.cli import app as loop_app

    data = Path(__file__).resolve().parents[2].parent / "shared/data/structures/perov_5/val.csv"
    if not data.is_file():
        import pytest

        pytest.skip(f"{data} is not here")
    args = ["benchmark", "structure-loop", str(data), "--limit", "120", "--seeds", "2"]
    args += ["--members", "2", "--epochs", "5", "--initial", "6", "--batch", "4", "--top", "0.05"]
    args += ["--max-experiments", "30", "--json", "--out", str(tmp_path / "l")]
    res = CliRunner().invoke(loop_app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["pool"] == 120 and doc["top_structures"] == 6
    assert set(doc["summary"]) == {"cgcnn-ensemble", "elemnet-ensemble", "random"}
    for run in doc["runs"]:
        trace = run["trace"]
        assert len(set(trace)) == len(trace) <= 30  # no structure measured twice
        # the experiments count is where the first top structure appears in the trace
        if run["experiments"] is not None:
            assert run["experiments"] <= len(trace)
    # every planner of a seed starts from the same initial structures
    for seed in (0, 1):
        starts = {tuple(r["trace"][:6]) for r in doc["runs"] if r["seed"] == seed}
        assert len(starts) == 1
    assert (tmp_path / "l" / "found.png").stat().st_size > 1000


def test_benchmark_structure_loop_pretrains_the_networks_on_another_table(
    tmp_path: Path,
) -> None:
    import csv

    from typer.testing import CliRunner

    from loop.cli import app as loop_app

    data = Path(__file__).resolve().parents[2].parent / "shared/data/structures/perov_5/test.csv"
    if not data.is_file():
        import pytest

        pytest.skip(f"{data} is not here")
    csv.field_size_limit(1 << 30)
    with data.open() as f:
        rows = [r for _, r in zip(range(150), csv.DictReader(f))]
    pre = tmp_path / "pre.csv"
    with pre.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[100:])
    args = ["benchmark", "structure-loop", str(data), "--limit", "100", "--seeds", "1"]
    args += ["--members", "2", "--epochs", "3", "--initial", "5", "--batch", "4"]
    args += ["--top", "0.05", "--max-experiments", "13", "--pretrain", str(pre)]
    args += ["--pretrain-budget", "2", "--json", "--out", str(tmp_path / "l")]
    res = CliRunner().invoke(loop_app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["pretrained"]["rows"] == 50
    assert set(doc["pretrained"]) >= {"cgcnn-ensemble", "elemnet-ensemble"}
    assert "pretrained on 50 structures" in (tmp_path / "l" / "results.md").read_text()
    # every network's first fit in the loop started from the pretrained weights
    fitted = [r for r in doc["runs"] if r["rounds"]]
    assert fitted and all(r["first_fit_warm"] is True for r in fitted)


@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data" / "microstructure" / "random_3d_rve_v02.h5").is_file(),
    reason="shared microstructure reference set not found",
)
def test_benchmark_homogenization_reproduces_the_reference(tmp_path: Path) -> None:
    ref = ROOT.parent / "shared" / "data" / "microstructure" / "random_3d_rve_v02.h5"
    out = tmp_path / "h"
    args = ["benchmark", "homogenization", str(ref), "--samples", "1", "--grids", "16"]
    args += ["--convergence-samples", "1", "--random-samples", "1", "--out", str(out), "--json"]
    Cli(tmp_path)(*args)
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["rows"]) == 3 and doc["temperatures"] == [293.1, 813.1, 1325.0]
    assert all(r["max_abs_rel_err"] < 1e-6 for r in doc["rows"])
    assert all(b["elastic_inside"] == 1 for b in doc["bounds"])
    assert "| 293.1 |" in (out / "results.md").read_text()


def test_benchmark_microstructures_scores_the_cnn_beside_both_baselines(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    data = tmp_path / "set.npz"
    cli("simulate", "microstructures", "--n", "30", "--size", "6", "--column", "3", "-o", data)
    out = tmp_path / "m"
    doc = cli.json(
        "benchmark",
        "microstructures",
        data,
        "--budget",
        "4",
        "--members",
        "2",
        "--epochs",
        "5",
        "--out",
        out,
        "--json",
    )
    assert (doc["train"], doc["test"]) == (24, 6)
    models = doc["models"]
    assert list(models) == [
        "rule of mixtures",
        "2-point statistics + PCA + polynomial",
        "3-D CNN ensemble (2)",
    ]
    for m in models.values():
        assert m["mape"] > 0 and m["mae"] > 0
    assert "| rule of mixtures |" in (out / "results.md").read_text()
    # a set without the target's load case is refused, naming the fix
    cli(
        "simulate",
        "microstructures",
        "--n",
        "20",
        "--size",
        "4",
        "--column",
        "1",
        "-o",
        tmp_path / "c11.npz",
    )
    err = cli.fails("benchmark", "microstructures", tmp_path / "c11.npz", "--out", out)
    assert "not C33" in err and "--column 3" in err


def test_benchmark_design_loop_runs_the_planner_and_random_arms(tmp_path: Path) -> None:
    spec = tmp_path / "ms.toml"
    text = (ROOT / "examples" / "microstructure_stiffness.toml").read_text()
    spec.write_text(
        text.replace("size = 16", "size = 6").replace("initial_design = 8", "initial_design = 4")
    )
    out = tmp_path / "d"
    doc = Cli(tmp_path).json(
        "benchmark",
        "design-loop",
        spec,
        "--target",
        "3.0",
        "--seeds",
        "2",
        "--max-experiments",
        "8",
        "--out",
        out,
        "--json",
    )
    assert set(doc["summary"]) == {"planner", "random"} and doc["seeds"] == 2
    for r in doc["runs"]:
        assert 1 <= len(r["values"]) <= 8
        # where the target was first reached, or a miss
        hit = [i + 1 for i, v in enumerate(r["values"]) if v >= 3.0]
        assert r["first_hit"] == (hit[0] if hit else None)
        if r["strategy"] == "random" or r["first_hit"] is None:
            assert r["experiments"] == r["first_hit"]
        else:
            # the planner pays for the whole batch the hit came in: 4 initial, then batches of 4
            assert r["experiments"] == -(-r["first_hit"] // 4) * 4
    assert "| planner |" in (out / "results.md").read_text()


def test_paired_t_interval_matches_the_t_table() -> None:
    import numpy as np

    from loop.benchmark.design_loop import paired_t_interval

    d = np.array([3.0, 5.0, 4.0, 6.0, 2.0, 4.0, 5.0, 3.0, 4.0, 4.0])
    # t(0.975, 9) = 2.262; sd 1.155; n 10
    assert abs(paired_t_interval(d) - 2.262 * d.std(ddof=1) / np.sqrt(10)) < 2e-3
    assert paired_t_interval(d[:1]) is None


def test_benchmark_surrogate_reads_structure_tables(tmp_path: Path) -> None:
    import csv

    from pymatgen.core import Lattice, Structure

    rows = []
    pairs = [("Na", "Cl"), ("K", "Br"), ("Mg", "O"), ("Li", "F"), ("Ca", "S")]
    for i in range(30):
        a = 4.0 + 0.05 * i
        el = pairs[i % len(pairs)]
        s = Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(a), list(el), [[0, 0, 0], [0.5, 0.5, 0.5]]
        )
        rows.append({"cif": s.to(fmt="cif"), "y": round(a / 2, 4)})
    data = tmp_path / "rocksalt.csv"
    with data.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["cif", "y"])
        w.writeheader()
        w.writerows(rows)
    cli = Cli(tmp_path)
    out = tmp_path / "s"
    doc = cli.json(
        "benchmark",
        "surrogate",
        "--data",
        data,
        "--input",
        "cif",
        "--target",
        "y",
        "-m",
        "mean",
        "-m",
        "cgcnn-ensemble",
        "-m",
        "rf",
        "--option",
        "cgcnn-ensemble:members=2",
        "--option",
        "cgcnn-ensemble:epochs=5",
        "--folds",
        "2",
        "-o",
        out,
        "--json",
    )
    res = doc["results"] if "results" in doc else doc["models"]
    assert set(res) == {"mean", "cgcnn-ensemble", "rf"}
    for r in res.values():
        assert [f["n_train"] + f["n_test"] for f in r["folds"]] == [30, 30]
    err = cli.fails(
        "benchmark",
        "surrogate",
        "--data",
        data,
        "--input",
        "cif",
        "--target",
        "y",
        "-m",
        "cgcnn-ensemble",
        "--test-data",
        data,
        "-o",
        out,
    )
    assert "--test-data is for composition tables" in err
