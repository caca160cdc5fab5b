"""`loop surrogate pretrain|list|delete` and fine-tuning a pretrained ElemNet in a campaign."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "tests" / "data" / "mp_e_form_300.csv"
TINY = ["--option", "size=tiny", "--option", "members=2", "--option", "epochs=15"]

SPEC = """
name = "oxides"
budget = 20
batch_size = 3

[compositions]
elements = ["Li", "Fe", "Mn", "O"]
min_components = 2
max_components = 4
step = 0.1

[[objectives]]
name = "formation_energy"
direction = "minimize"

[model]
surrogate = "elemnet-ensemble"
acquisition = "qucb"
[model.surrogate_options]
size = "tiny"
members = 2
epochs = 15
{extra}
"""

#: Five measured oxides: more than the initial design (elements + 1 = 5 is reached)
FIRST = {"Li2O": -2.07, "Fe2O3": -1.71, "MnO2": -1.6, "LiFeO2": -1.9, "Li2MnO3": -2.1}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_pretrain_list_conflict_delete(cli: Cli) -> None:
    res = cli("surrogate", "pretrain", "--data", SLICE, "--name", "mp300", *TINY)
    assert "stored pretrained model 'mp300'" in res.stdout
    listed = cli.json("surrogate", "list")
    assert [m["name"] for m in listed] == ["mp300"]
    m = listed[0]
    assert m["kind"] == "elemnet-ensemble"
    assert m["settings"]["data"]["rows_used"] == 300
    assert m["metrics"]["target"]["n"] == 300  # out-of-fold predictions of every row
    ckpts = list((cli.artifacts / "pretrained").glob("mp300-*.pt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], weights_only=True)
    assert len(state["members"]) == 2 and state["arch"]["in_dim"] == 86

    err = cli.fails("surrogate", "pretrain", "--data", SLICE, "--name", "mp300", *TINY)
    assert "already exists" in err and "--replace" in err
    cli("surrogate", "pretrain", "--data", SLICE, "--name", "mp300", "--replace", *TINY)
    assert len(list((cli.artifacts / "pretrained").glob("mp300-*.pt"))) == 1

    err = cli.fails("surrogate", "pretrain", "--data", SLICE, "--name", "gp", "--model", "gp")
    assert "cannot be pretrained" in err
    cli("surrogate", "delete", "mp300")
    assert cli.json("surrogate", "list") == []
    assert "no pretrained model named 'mp300'" in cli.fails("surrogate", "delete", "mp300")


def _measure(cli: Cli, tmp_path: Path, rows: dict[str, float], name: str) -> None:
    f = tmp_path / f"{name}.csv"
    f.write_text("composition,formation_energy\n" + "".join(f"{k},{v}\n" for k, v in rows.items()))
    cli("ingest", "oxides", f)


def test_campaign_fine_tunes_a_pretrained_elemnet(cli: Cli, tmp_path: Path) -> None:
    cli("surrogate", "pretrain", "--data", SLICE, "--name", "mp300", *TINY)
    spec = tmp_path / "oxides.toml"
    spec.write_text(SPEC.format(extra='pretrained = "mp300"'))
    cli("campaign", "create", spec)
    _measure(cli, tmp_path, FIRST, "first")
    out = cli.json("propose", "oxides", "-n", "3")
    props = out["proposals"]
    assert len(props) == 3
    assert all(p["strategy"] == "elemnet-ensemble+qucb" for p in props)
    fit = cli.json("status", "oxides")["last_fit"]
    assert fit["kind"] == "elemnet-ensemble"
    assert fit["metrics"]["warm_start"] is True  # started from the pretrained weights


def test_campaign_naming_a_missing_pretrained_model_is_refused(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "oxides.toml"
    spec.write_text(SPEC.format(extra='pretrained = "nope"'))
    cli("campaign", "create", spec)
    _measure(cli, tmp_path, FIRST, "first")
    err = cli.fails("propose", "oxides")
    assert "no pretrained model named 'nope'" in err
    assert "loop surrogate pretrain" in err
