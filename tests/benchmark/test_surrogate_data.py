"""Reading composition tables (bad rows named by file line, drops counted) and the splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loop.benchmark.surrogate_data import load_composition_table, make_splits
from loop.errors import LoopError

SLICE = Path(__file__).resolve().parents[1] / "data" / "mp_e_form_300.csv"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


def test_reads_the_slice() -> None:
    t = load_composition_table(SLICE, input_column="formula", target_column="target")
    assert len(t) == 300 and t.rows_read == 300 and t.dropped == {}
    assert t.X.shape == (300, 86)
    assert np.allclose(t.X.sum(1).numpy(), 1.0, atol=1e-5)
    assert t.lines[0] == 2  # the first data row is line 2
    assert len(t.sha256) == 64


def test_every_bad_row_is_named(tmp_path: Path) -> None:
    body = "".join(f"Fe{i + 1}O1,{i}\n" for i in range(12))
    p = _write(tmp_path, "formula,target\nNaCl,1\nXx2O,2\nNaCl,abc\n\nKCl,inf\n" + body)
    with pytest.raises(LoopError) as err:
        load_composition_table(p, input_column="formula", target_column="target")
    msg = str(err.value)
    assert "3 of 16 data rows are bad" in msg and "file line numbers" in msg
    assert "line 3: column 'formula' = 'Xx2O'" in msg
    assert "line 4: column 'target': 'abc' is not a finite number" in msg
    assert "line 6:" in msg  # the blank line 5 still counts as a line
    assert "--skip-bad-rows" in msg
    t = load_composition_table(
        p, input_column="formula", target_column="target", skip_bad_rows=True
    )
    assert len(t) == 13
    assert t.dropped == {"bad rows (bad formula)": 1, "bad rows (bad target)": 2}


def test_drops_and_limit(tmp_path: Path) -> None:
    rows = "".join(f"Fe{i + 1}O1,{v}\n" for i, v in enumerate([0.1, 7.0, -6.0, 0.3, 0.2]))
    p = _write(tmp_path, "formula,target\n" + rows)
    t = load_composition_table(
        p, input_column="formula", target_column="target", drop_abs_above=5, limit=2
    )
    assert t.dropped == {"|target| > 5": 2, "left out by --limit": 1}
    assert len(t) == 2 and set(t.y) <= {0.1, 0.3, 0.2}
    with pytest.raises(LoopError, match="no column 'y'.*'formula', 'target'"):
        load_composition_table(p, input_column="formula", target_column="y")


def test_kfold_is_matbench_kfold() -> None:
    from sklearn.model_selection import KFold

    splits = make_splits(50, kind="kfold", folds=5, split_seed=18012019)
    ref = list(KFold(5, shuffle=True, random_state=18012019).split(np.arange(50)))
    assert [s.test.tolist() for s in splits] == [te.tolist() for _, te in ref]


def test_group_kfold_keeps_polymorphs_together() -> None:
    groups = [f"g{i % 37}" for i in range(200)]
    splits = make_splits(200, kind="group-kfold", folds=4, split_seed=1, groups=groups)
    seen = np.concatenate([s.test for s in splits])
    assert sorted(seen.tolist()) == list(range(200))
    for s in splits:
        train_groups = {groups[i] for i in s.train}
        assert not train_groups & {groups[i] for i in s.test}
        assert 40 <= len(s.test) <= 60
    other = make_splits(200, kind="group-kfold", folds=4, split_seed=2, groups=groups)
    assert [s.test.tolist() for s in other] != [s.test.tolist() for s in splits]


def test_fixed_split() -> None:
    (s,) = make_splits(100, kind="fixed", split_seed=3, test_fraction=0.25)
    assert len(s.test) == 25 and len(s.train) == 75
    assert not set(s.test.tolist()) & set(s.train.tolist())
    with pytest.raises(LoopError, match="test-fraction"):
        make_splits(100, kind="fixed", test_fraction=1.5)
