"""Data set specs: TOML files, Olympus folders, and clear errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loop.benchmark.dataset import load_dataset
from loop.errors import LoopError, SpecError

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "examples" / "benchmarks"


def _write(tmp: Path, spec: str, table: str) -> Path:
    (tmp / "t.csv").write_text(table)
    p = tmp / "spec.toml"
    p.write_text(spec)
    return p


SPEC = """
name = "tiny"
path = "t.csv"
replicates = "{rep}"
[[inputs]]
column = "x (mm)"
name = "x"
kind = "int"
[[inputs]]
column = "gas"
kind = "categorical"
[objective]
column = "y"
direction = "minimize"
"""

TABLE = "x (mm),gas,y\n1,Ar,5\n1,Ar,7\n2,N2,1\n3,Ar,4\n3,N2,2\n"


def test_replicates_are_combined_per_unique_input(tmp_path: Path) -> None:
    d = load_dataset(_write(tmp_path, SPEC.format(rep="mean"), TABLE))
    assert d.n == 4 and d.n_rows == 5
    assert d.candidates[0] == {"x": 1, "gas": "Ar"}
    assert d.y.tolist() == [6.0, 1.0, 4.0, 2.0]
    assert d.direction == "minimize"
    assert [type(p).__name__ for p in d.parameters] == ["IntParameter", "CategoricalParameter"]
    # minimize: the best is y=1 (index 1), then y=2 (index 3)
    assert d.top(0.5).tolist() == [1, 3]
    d = load_dataset(_write(tmp_path, SPEC.format(rep="max"), TABLE))
    assert d.y.tolist()[0] == 7.0


def test_constraints_keep_infeasible_candidates_out_of_the_targets(tmp_path: Path) -> None:
    spec = SPEC.format(rep="mean") + '[[constraints]]\ncolumn = "c"\nupper = 0.5\n'
    table = "x (mm),gas,y,c\n1,Ar,5,0\n2,N2,1,1\n3,Ar,4,0\n3,N2,2,0\n"
    d = load_dataset(_write(tmp_path, spec, table))
    assert d.feasible().tolist() == [True, False, True, True]
    # the best (index 1) is infeasible: the targets are the best half of the 3 feasible ones
    assert d.top(0.5).tolist() == [3, 2]


def test_bad_column_name_names_file_key_and_columns(tmp_path: Path) -> None:
    bad = SPEC.format(rep="mean").replace('column = "y"', 'column = "yield"')
    with pytest.raises(LoopError) as err:
        load_dataset(_write(tmp_path, bad, TABLE))
    msg = str(err.value)
    assert "t.csv" in msg and "'yield'" in msg and "objective.column" in msg
    assert "'x (mm)', 'gas', 'y'" in msg


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    bad = SPEC.format(rep="mean").replace('kind = "int"', 'kind = "int"\nunit = "mm"')
    with pytest.raises(SpecError) as err:
        load_dataset(_write(tmp_path, bad, TABLE))
    assert "inputs.0.unit" in str(err.value) and "column, name, kind" in str(err.value)


def test_bad_value_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(LoopError) as err:
        load_dataset(_write(tmp_path, SPEC.format(rep="mean"), TABLE + "2.5,Ar,3\n"))
    assert "line 7" in str(err.value) and "'x (mm)'" in str(err.value)
    with pytest.raises(LoopError) as err:
        load_dataset(_write(tmp_path, SPEC.format(rep="mean"), TABLE + "2,Ar,n/a\n"))
    assert "line 7" in str(err.value) and "column 'y'" in str(err.value)


def test_olympus_folder_is_read_from_its_config(tmp_path: Path) -> None:
    folder = tmp_path / "olympus_set"
    folder.mkdir()
    cfg = {
        "parameters": [
            {"name": "a", "type": "continuous", "low": 0, "high": 1},
            {"name": "b", "type": "categorical", "options": ["u", "v"]},
        ],
        "measurements": [{"name": "gap", "type": "continuous"}],
        "default_goal": "minimize",
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "data.csv").write_text("0.1,u,3\n0.5,v,1\n0.9,u,2\n")
    for arg in (folder, folder / "config.json"):
        d = load_dataset(arg)
        assert d.name == "olympus_set" and d.n == 3 and d.direction == "minimize"
        assert d.objective_name == "gap" and d.top(0.3).tolist() == [1]


@pytest.mark.parametrize(
    ("spec", "n", "rows", "direction"),
    [
        ("agnp.toml", 164, 3295, "minimize"),
        ("autoam.toml", 100, 100, "maximize"),
        ("crossed_barrel.toml", 600, 1800, "maximize"),
        ("p3ht.toml", 178, 233, "maximize"),
        ("perovskite.toml", 94, 139, "minimize"),
    ],
)
def test_shipped_liang_specs(spec: str, n: int, rows: int, direction: str) -> None:
    d = load_dataset(BENCH / spec)
    assert (d.n, d.n_rows, d.direction) == (n, rows, direction)


def test_olympus_agnp_goal_is_overridden_to_match_liang() -> None:
    liang = load_dataset(BENCH / "agnp.toml")
    olympus = load_dataset(BENCH / "olympus_agnp.toml")
    # the Olympus table holds Liang's per-input mean loss; with the goal fixed the targets agree
    assert olympus.direction == "minimize"
    assert sorted(olympus.y[olympus.top(0.05)].round(6)) == sorted(
        liang.y[liang.top(0.05)].round(6)
    )
    # read as its config says (maximize), the targets would be the worst settings
    raw = load_dataset(BENCH / "olympus" / "agnp")
    assert raw.direction == "maximize"
    assert set(raw.y[raw.top(0.05)].round(6)).isdisjoint(liang.y[liang.top(0.05)].round(6))
