"""`loop benchmark surrogate`: a short run on a 300-row slice of mp_e_form, and refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli

SLICE = Path(__file__).resolve().parents[1] / "data" / "mp_e_form_300.csv"


#: A tiny ElemNet ensemble: the real family, small enough for a test
TINY = [
    "--option", "elemnet-ensemble:size=tiny", "--option", "elemnet-ensemble:members=2",
    "--option", "elemnet-ensemble:epochs=15", "--option", "elemnet-ensemble:lr=0.001",
]  # fmt: skip


def _run(cli: Cli, out: Path, *args: Any) -> dict[str, Any]:
    return cli.json("benchmark", "surrogate", "--data", SLICE, "-o", out, *args)


def test_mean_rf_and_a_registry_family_on_300_rows(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = tmp_path / "bench"
    doc = _run(
        cli, out, "--model", "mean", "--model", "rf", "--model", "elemnet-ensemble", *TINY,
        "--folds", "2",
    )  # fmt: skip
    assert doc["data"]["rows_used"] == 300 and len(doc["data"]["sha256"]) == 64
    assert doc["folds_run"] == [0, 1] and doc["hardware"]["cores"] >= 1
    models = doc["models"]
    assert list(models) == ["mean", "rf", "elemnet-ensemble"]
    for r in models.values():
        assert [f["n_train"] + f["n_test"] for f in r["folds"]] == [300, 300]
        assert r["mean"]["pred_per_s"] > 0
    # identical splits, and the forest learns something the mean cannot
    assert models["rf"]["mean"]["mae"] < 0.8 * models["mean"]["mean"]["mae"]
    assert models["rf"]["mean"]["r2"] > 0.3
    assert models["mean"]["mean"]["spearman"] is None  # a constant sigma ranks nothing
    assert models["rf"]["mean"]["spearman"] > 0
    # the recalibrated family also gets raw-sigma figures: same errors, other uncertainty
    net = models["elemnet-ensemble"]["folds"][0]
    assert net["sigma_scale"] != 1.0
    assert net["metrics_raw"]["mae"] == net["metrics"]["mae"]
    assert net["metrics_raw"]["nll"] != net["metrics"]["nll"]
    assert models["rf"]["folds"][0]["metrics_raw"] is None
    # the calibration the fit did not apply is scored too, on the same predictions
    assert net["info"]["calibration"] == "curve"
    assert set(net["metrics_alt"]) == {"rms"}
    assert net["metrics_alt"]["rms"]["mae"] == net["metrics"]["mae"]
    assert net["sigma_scale_alt"]["rms"] == net["info"]["sigma_scales"]["rms"]
    assert "rms" in models["elemnet-ensemble"]["alt"]
    assert json.loads((out / "results.json").read_text())["models"]["rf"] == models["rf"]
    md = (out / "results.md").read_text()
    assert "| rf |" in md and "folds 2/2" in md
    assert "| elemnet-ensemble (size=tiny, members=2, epochs=15, lr=0.001) [raw sigma] |" in md
    assert "[calibrated rms, x" in md and "[calibrated curve, x" in md
    for png in ("parity.png", "calibration.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # the human table
    res = cli("benchmark", "surrogate", "--data", SLICE, "-o", tmp_path / "b2",
              "--model", "mean", "--split", "fixed", "--limit", "100")  # fmt: skip
    assert "mean" in res.stdout and "wrote" in res.stdout and "limit 100 rows" in res.stdout


@pytest.mark.skipif(
    not os.environ.get("LOOP_TEST_GP"),
    reason="an exact GP on 86 element fractions takes 10-100 s per fit on 2 cores (the "
    "ElemNet family above covers the registry path); set LOOP_TEST_GP=1 to run it",
)
def test_gp_through_the_registry(tmp_path: Path) -> None:
    doc = _run(
        Cli(tmp_path), tmp_path / "gp", "--model", "gp", "--option", "gp:max_points=30",
        "--limit", "60", "--folds", "2", "--folds-run", "1",
    )  # fmt: skip
    (fold,) = doc["models"]["gp"]["folds"]
    assert fold["n_train"] == 30 and fold["n_test"] == 30 and fold["sigma_scale"] == 1.0
    assert fold["info"]["warm_started"] is False
    assert 0 < fold["metrics"]["mae"] < 2 and fold["metrics"]["nll"] is not None
    assert doc["models"]["gp"]["options"] == {"max_points": 30}


def test_pretrained_state_reaches_the_neural_families_only(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("surrogate", "pretrain", "--data", SLICE, "--name", "mp300", "--option", "size=tiny",
        "--option", "members=2", "--option", "epochs=5")  # fmt: skip
    doc = cli.json(
        "benchmark", "surrogate", "--data", SLICE, "-o", tmp_path / "pt",
        "--model", "elemnet-ensemble", *TINY, "--model", "mean", "--pretrained", "mp300",
        "--split", "fixed", "--train-size", "50",
    )  # fmt: skip
    (fold,) = doc["models"]["elemnet-ensemble"]["folds"]
    assert fold["info"]["warm_started"] is True and fold["info"]["warm_start"] is True
    assert fold["n_train"] == 50 and fold["n_test"] == 60
    err = cli.fails(
        "benchmark", "surrogate", "--data", SLICE, "-o", tmp_path / "pt2",
        "--model", "elemnet-ensemble", "--pretrained", "nope",
    )  # fmt: skip
    assert "no pretrained model named 'nope'" in err and "mp300" in err
    assert not (tmp_path / "pt2").exists()


def test_drops_are_counted(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = SLICE.read_text().splitlines()
    bad.write_text("\n".join([*lines[:50], "Xx2O,1.0", "NaCl,99"]) + "\n")
    doc = _run(
        Cli(tmp_path), tmp_path / "d", "--data", bad, "--model", "mean", "--skip-bad-rows",
        "--drop-abs-above", "5", "--split", "fixed",
    )  # fmt: skip
    assert doc["data"]["dropped"] == {"bad rows (bad formula)": 1, "|target| > 5": 1}
    assert doc["data"]["rows_read"] == 51 and doc["data"]["rows_used"] == 49


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--target", "energy"], "has no column 'energy'"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--option", "gp:bogus=1"], "unknown option(s) ['bogus'] for surrogate 'gp'"),
        (["--option", "rf:trees=3"], "unknown option(s) ['trees'] for model 'rf'"),
        (["--option", "rf"], "is not MODEL:KEY=VALUE"),
        (["--folds-run", "9"], "--folds-run 9 is more than the 5 fold(s)"),
        (["--fold", "6"], "--fold 6: this split has 5 fold(s)"),
        (["--fold", "0"], "--fold 0: folds are numbered from 1"),
        (["--fold", "2", "--fold", "2"], "--fold 2 is named twice"),
        (["--fold", "2", "--folds-run", "2"], "--fold and --folds-run both pick folds"),
        (["--train-size", "100000"], "--train-size 100000 is more than"),
    ],
)
def test_refusals_write_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "never"
    err = Cli(tmp_path).fails(
        "benchmark", "surrogate", "--data", SLICE, "--model", "mean", "--model", "rf",
        "--model", "gp", "-o", out, *args,
    )  # fmt: skip
    assert expected in err
    assert not out.exists()


def test_bad_formula_row_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = SLICE.read_text().splitlines()
    bad.write_text("\n".join([*lines[:20], "Fe2+O,1.0", *lines[20:40]]) + "\n")
    out = tmp_path / "never"
    err = Cli(tmp_path).fails("benchmark", "surrogate", "--data", bad, "--model", "mean", "-o", out)
    assert f"data file {bad}: 1 of 40 data rows are bad" in err
    assert "line 21: column 'formula' = 'Fe2+O'" in err and "--skip-bad-rows" in err
    assert not out.exists()


def test_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    err = Cli(tmp_path).fails("benchmark", "surrogate", "--data", SLICE, "--model", "xgb")
    assert "unknown model 'xgb'" in err and "known models: mean, rf, " in err and "gp" in err
    err = Cli(tmp_path).fails("benchmark", "surrogate", "--data", tmp_path / "no.csv", "-m", "rf")
    assert "does not exist" in err


def test_screen_times_a_composition_pool(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (row,) = cli.json(
        "benchmark", "screen", "-m", "elemnet-dropout", "--option", "elemnet-dropout:size=tiny",
        "--option", "elemnet-dropout:samples=4", "--option", "elemnet-dropout:epochs=1",
        "--elements", "Li,Fe,O", "--pool", "150", "--step", "0.05", "--device", "cpu",
    )  # fmt: skip
    assert row["pool"] == 150 and row["members"] == 4 and row["device"] == "cpu"
    assert row["per_second"] > 0
    assert row["per_member_per_second"] == pytest.approx(4 * row["per_second"], rel=0.01)
    err = cli.fails("benchmark", "screen", "--elements", "Li,O", "--pool", "1000")
    assert "holds 21 compositions, fewer than the pool of 1,000" in err
    assert "are benchmark baselines" in cli.fails("benchmark", "screen", "-m", "rf")


def test_one_family_under_two_labels_with_its_noise(tmp_path: Path) -> None:
    """FAMILY@LABEL runs a family again under other options, side by side on the same split;
    a likelihood loss makes the networks predict their noise, which the scores then include."""
    nll = [a.replace("elemnet-ensemble:", "elemnet-ensemble@nll:") for a in TINY]
    doc = _run(
        Cli(tmp_path), tmp_path / "lab", "--split", "fixed",
        "-m", "elemnet-ensemble", *TINY,
        "-m", "elemnet-ensemble@nll", *nll, "--option", "elemnet-ensemble@nll:loss=laplace_nll",
    )  # fmt: skip
    models = doc["models"]
    assert list(models) == ["elemnet-ensemble", "elemnet-ensemble@nll"]
    assert models["elemnet-ensemble@nll"]["options"]["loss"] == "laplace_nll"
    (plain,) = models["elemnet-ensemble"]["folds"]
    (noisy,) = models["elemnet-ensemble@nll"]["folds"]
    assert plain["n_test"] == noisy["n_test"] == 60
    assert plain["info"]["noise"] is None and noisy["info"]["noise"] == "laplace"
    assert noisy["metrics"]["mae"] < 1.0 and noisy["metrics"]["nll"] is not None
    # the weight of the noise (1 unless weigh_noise) is stored and named in the table
    w = noisy["info"]["noise_scale"]
    assert 0.1 <= w <= 10 and plain["info"]["noise_scale"] == 1.0
    md = (tmp_path / "lab" / "results.md").read_text()
    assert "| elemnet-ensemble@nll (size=tiny" in md
    assert md.count(f", noise x{w:.3g}]") == 3 and "noise x" not in md.split("@nll")[0]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("rf@x", "is not FAMILY@LABEL"), ("elemnet-ensemble@", "is not FAMILY@LABEL"),
     ("nope@x", "unknown model 'nope'")],
)  # fmt: skip
def test_bad_labels_are_refused(tmp_path: Path, model: str, expected: str) -> None:
    err = Cli(tmp_path).fails(
        "benchmark", "surrogate", "--data", SLICE, "-o", tmp_path / "never", "-m", model
    )
    assert expected in err
    assert not (tmp_path / "never").exists()


def test_folds_spread_over_runs_merge_into_the_one_run(tmp_path: Path) -> None:
    """`--fold` runs single folds of the protocol; `surrogate-merge` joins them into what one
    run over the same folds reports, and refuses runs that are not one protocol."""
    cli = Cli(tmp_path)
    common = ["--model", "mean", "--model", "rf", "--option", "rf:n_estimators=20",
              "--folds", "3"]  # fmt: skip
    whole = _run(cli, tmp_path / "all", *common)
    a = _run(cli, tmp_path / "a", *common, "--fold", "3", "--fold", "1")
    b = _run(cli, tmp_path / "b", *common, "--fold", "2")
    assert a["folds_run"] == [0, 2] and b["folds_run"] == [1]
    assert a["settings"]["fold_numbers"] == [3, 1]
    # a single fold is the same fold as in the whole run
    assert b["models"]["rf"]["folds"][0]["metrics"] == whole["models"]["rf"]["folds"][1]["metrics"]

    files = [tmp_path / d / "results.json" for d in ("a", "b")]
    out = tmp_path / "merged"
    merged = cli.json("benchmark", "surrogate-merge", *files, "-o", out)
    assert merged["folds_run"] == [0, 1, 2]
    for m in ("mean", "rf"):
        got, want = merged["models"][m], whole["models"][m]
        assert [f["fold"] for f in got["folds"]] == [0, 1, 2]
        for key in ("mae", "rmse", "r2", "miscal_area", "nll", "cov90"):
            assert got["mean"][key] == pytest.approx(want["mean"][key], rel=1e-9)
            assert got["std"][key] == pytest.approx(want["std"][key], rel=1e-9)
        assert {f["hardware"] for f in got["folds"]} == {whole["hardware"]["summary"]}
    assert [r["folds_run"] for r in merged["merged_from"]] == [[0, 2], [1]]
    md = (out / "results.md").read_text()
    assert "folds run: [1, 2, 3] of 3" in md and "| rf (n_estimators=20) |" in md
    assert f"merged from `{files[1]}`: folds [2]" in md
    assert (
        "mean ± std over folds [1, 2, 3]"
        in cli("benchmark", "surrogate-merge", *files, "-o", tmp_path / "m2").stdout
    )

    # refusals name the file and what differs, and write nothing
    _run(cli, tmp_path / "c", *common[:-2], "--option", "rf:n_estimators=30", "--folds", "3",
         "--fold", "2")  # fmt: skip
    _run(cli, tmp_path / "d", *common, "--fold", "2", "--limit", "200")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for extra, expected in [
        ([files[0], files[1], files[1]], f"{files[1]}: fold 2 was run in {files[1]} too"),
        ([files[0], tmp_path / "c" / "results.json"], "settings differs from"),
        ([files[0], tmp_path / "d" / "results.json"], "data differs from"),
        ([files[0], bad], f"{bad}: not JSON (line 1"),
        ([files[0], tmp_path / "nope.json"], "nope.json: cannot read"),
        ([files[0]], "merging needs at least two results files"),
        ([files[0], tmp_path / "all" / "results.json"], "fold 1 was run in"),
    ]:
        never = tmp_path / "never"
        err = cli.fails("benchmark", "surrogate-merge", *extra, "-o", never)
        assert expected in err, err
        assert not never.exists()


def test_merge_picks_the_models_that_runs_with_another_baseline_share(tmp_path: Path) -> None:
    """A baseline run on one fold only: `--model` merges the models every run holds and says
    what it left out; without it, or naming a model a run lacks, the merge is refused."""
    cli = Cli(tmp_path)
    rf = ["--model", "rf", "--option", "rf:n_estimators=20", "--folds", "3"]
    whole = _run(cli, tmp_path / "all", *rf)
    a = tmp_path / "a" / "results.json"
    _run(cli, tmp_path / "a", "--model", "mean", *rf, "--fold", "1")
    b = tmp_path / "b" / "results.json"
    _run(cli, tmp_path / "b", *rf, "--fold", "2", "--fold", "3")
    merged = cli.json("benchmark", "surrogate-merge", a, b, "-m", "rf", "-o", tmp_path / "m")
    assert list(merged["models"]) == ["rf"] and merged["settings"]["models"] == ["rf"]
    assert list(merged["settings"]["options"]) == ["rf"]
    got, want = merged["models"]["rf"], whole["models"]["rf"]
    assert [f["fold"] for f in got["folds"]] == [0, 1, 2]
    for key in ("mae", "rmse", "miscal_area", "spearman"):
        assert got["mean"][key] == pytest.approx(want["mean"][key], rel=1e-9)
    assert [r["models_left_out"] for r in merged["merged_from"]] == [["mean"], None]
    md = (tmp_path / "m" / "results.md").read_text()
    assert f"merged from `{a}`: folds [1]" in md and "; left out: mean" in md
    assert "| mean |" not in md

    for extra, expected in [
        ([], "settings differs from"),
        (["-m", "mean"], f"{b}: has no model 'mean' (it ran rf)"),
    ]:
        never = tmp_path / "never"
        err = cli.fails("benchmark", "surrogate-merge", a, b, *extra, "-o", never)
        assert expected in err, err
        assert not never.exists()


def test_an_error_model_is_scored_beside_the_networks_own_spread(tmp_path: Path) -> None:
    """6,000 Fe-Ni-Cu-Al compositions whose measurements are noisy only where Al is present:
    4,800 training rows, of which 15% (720) are the calibration split the trees learn from."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(4), 6000).round(3)
    x[rng.random(6000) < 0.5, 3] = 0.0  # half the compositions without Al
    x /= x.sum(1, keepdims=True)
    noise = np.where(x[:, 3] > 0, 0.3, 0.01) * rng.standard_normal(6000)
    y = -x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + noise
    rows = [
        "".join(f"{el}{v:.4f}" for el, v in zip(("Fe", "Ni", "Cu", "Al"), xi, strict=True) if v)
        for xi in x
    ]
    data = tmp_path / "hetero.csv"
    data.write_text("formula,target\n" + "".join(f"{f},{t:.5f}\n" for f, t in zip(rows, y)))
    E = "elemnet-ensemble:"
    doc = _run(
        Cli(tmp_path), tmp_path / "em", "--data", data, "--split", "fixed", "--model",
        "elemnet-ensemble", "--option", E + "size=tiny", "--option", E + "members=2",
        "--option", E + "epochs=5", "--option", E + "lr=0.001", "--option",
        E + "batch_size=128", "--option", E + "cal_fraction=0.15", "--option",
        E + "error_model=trees",
    )  # fmt: skip
    fold = doc["models"]["elemnet-ensemble"]["folds"][0]
    assert fold["info"]["error_model"] == "trees" and fold["info"]["error_model_rows"] == 720
    # the scored sigma is the trees', calibrated by their own factor; same means either way
    assert fold["sigma_scale"] == fold["info"]["error_model_scale"]
    plain = fold["metrics_without_error_model"]
    assert plain["mae"] == fold["metrics"]["mae"]
    assert fold["metrics"]["spearman"] > plain["spearman"] + 0.1
    assert fold["metrics"]["spearman"] > 0.4
    md = (tmp_path / "em" / "results.md").read_text()
    assert "error_model=trees) [without error model] |" in md
