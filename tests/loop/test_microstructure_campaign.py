"""`[microstructures]` campaigns: a stack of voxel images as the pool, the 3-D CNN surrogate, the
homogenization simulator answering from the stack, and the report's image section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from loop.cli import app
from loop.errors import SpecError
from loop.microgen import labelled_set, save_dataset
from loop.spec import IntParameter, parse_spec

SPEC = """\
name = "ms_pool"
budget = 20
batch_size = 4
initial_design = 8

[microstructures]
path = "stack.npz"

[[objectives]]
name = "E_z"
direction = "maximize"

[model]
surrogate = "cnn3d-ensemble"
surrogate_options = {{ members = 2, epochs = 15, channels = [4, 8], width = 16 }}

[simulator]
name = "homogenization"
{extra}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stack")
    arrays, attrs = labelled_set(24, 6, contrast=10.0, seed=2, columns=[2])
    save_dataset(folder / "stack.npz", arrays, attrs)
    return folder


def _invoke(db: Path, *args: str) -> str:
    res = CliRunner().invoke(app, ["--db", str(db), *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_spec_derives_the_image_parameter_and_the_cnn() -> None:
    raw = {"name": "m", "budget": 5, "microstructures": {"path": "x.npz"}}
    spec = parse_spec({**raw, "objectives": [{"name": "E_z"}]})
    assert spec.model.surrogate == "cnn3d-ensemble" and spec.is_pool
    with pytest.raises(SpecError, match="cannot sit beside"):
        parse_spec(
            {
                **raw,
                "objectives": [{"name": "E_z"}],
                "parameters": [{"type": "float", "name": "vf", "low": 0, "high": 1}],
            }
        )
    with pytest.raises(SpecError, match=r"both \[microstructures\] and \[pool\]"):
        parse_spec(
            {**raw, "objectives": [{"name": "E_z"}], "pool": {"path": "p.csv", "columns": ["a"]}}
        )
    ok = parse_spec(
        {
            **raw,
            "objectives": [{"name": "E_z"}],
            "parameters": [IntParameter(name="image", low=0, high=9).model_dump()],
        }
    )
    assert ok.parameters[0].name == "image"


def test_refusals_at_create_name_the_problem(tmp_path: Path, stack: Path) -> None:
    (tmp_path / "stack.npz").write_bytes((stack / "stack.npz").read_bytes())
    db = tmp_path / "l.db"
    gp = tmp_path / "gp.toml"
    text = SPEC.format(extra="").replace('surrogate = "cnn3d-ensemble"', 'surrogate = "gp"')
    gp.write_text(
        text.replace(
            "surrogate_options = { members = 2, epochs = 15, channels = [4, 8], width = 16 }\n", ""
        )
    )
    res = CliRunner().invoke(app, ["--db", str(db), "campaign", "create", str(gp)])
    assert res.exit_code == 2 and "needs an image surrogate" in res.output
    bad = np.zeros((3, 4, 4, 4))
    bad[1, 0, 0, 0] = 5.0
    np.save(tmp_path / "bad.npy", bad)
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.format(extra="").replace("stack.npz", "bad.npy"))
    res = CliRunner().invoke(app, ["--db", str(db), "campaign", "create", str(spec)])
    assert res.exit_code == 2 and "bad.npy: image 1 has voxels outside [0, 1]" in res.output
    # a parameter campaign cannot use the image surrogate
    plain = tmp_path / "plain.toml"
    plain.write_text(
        'name = "p"\nbudget = 4\n[[parameters]]\ntype = "float"\nname = "x"\nlow = 0\nhigh = 1\n'
        '[[objectives]]\nname = "y"\n[model]\nsurrogate = "cnn3d-ensemble"\n'
    )
    res = CliRunner().invoke(app, ["--db", str(db), "campaign", "create", str(plain)])
    assert res.exit_code == 2 and "reads voxel images" in res.output
    assert "ms_pool" not in _invoke(db, "campaign", "list")


def test_a_stack_campaign_runs_end_to_end(tmp_path: Path, stack: Path) -> None:
    (tmp_path / "stack.npz").write_bytes((stack / "stack.npz").read_bytes())
    spec = tmp_path / "ms.toml"
    spec.write_text(SPEC.format(extra=""))
    db = tmp_path / "l.db"
    assert "pool of 24 candidates" in _invoke(db, "campaign", "create", str(spec))
    out = _invoke(db, "run", "ms_pool", "--via", "worker", "--budget", "12")
    assert "cnn3d-ensemble+qucb" in out
    rows = json.loads(_invoke(db, "export", "ms_pool", "--json"))
    rows = rows if isinstance(rows, list) else rows["measurements"]
    assert len(rows) == 12 and len({r["image"] for r in rows}) == 12
    # the simulator answered from the stack: the same label `loop simulate` computed
    from loop.microgen import load_dataset

    arrays, _ = load_dataset(stack / "stack.npz")
    from loop.homogenize import Phase, engineering_constants, homogenize

    r = rows[0]
    c = homogenize(arrays["images"][r["image"]], (Phase(1, 0.3, 1), Phase(10, 0.3, 10))).tensor
    assert r["E_z"] == pytest.approx(engineering_constants(c)["E_z"], rel=1e-5)
    _invoke(db, "propose", "ms_pool", "-n", "2")
    report = json.loads(_invoke(db, "report", "ms_pool", "--json"))
    sec = report["sections"]["microstructures"]
    assert sec["source"] == "stack" and len(sec["best"]) == 4 and len(sec["open"]) == 2
    assert "space" not in report["sections"]
    html = tmp_path / "r.html"
    _invoke(db, "report", "ms_pool", "-o", str(html))
    assert 'alt="images of the best measured and the proposed microstructures"' in (
        html.read_text()
    )
