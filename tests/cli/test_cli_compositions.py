"""Composition campaigns (`[compositions]`) through the CLI: create, ingest by formula, propose."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cli_helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
LI_TM = ROOT / "examples" / "compositions" / "li_tm_oxides.toml"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_create_enumerates_the_chemical_space(cli: Cli) -> None:
    res = cli("campaign", "create", LI_TM)
    assert res.stdout.strip() == "created campaign 'li_tm_oxides' with a pool of 33 candidates"
    data = cli.json("campaign", "create", LI_TM, "--name", "oxides-b")
    assert data["candidates"] == 33
    assert data["spec"]["compositions"]["elements"] == ["Li", "Fe", "Mn", "O"]
    # the derived design parameter is stored with the spec
    assert data["spec"]["parameters"] == [
        {
            "type": "composition",
            "name": "composition",
            "elements": ["Li", "Fe", "Mn", "O"],
            "min": {},
            "max": {},
            "total": 1.0,
        }
    ]


def test_create_refuses_a_space_too_large(cli: Cli, tmp_path: Path) -> None:
    text = LI_TM.read_text(encoding="utf-8").replace("step = 0.1", "step = 0.001")
    spec = tmp_path / "big.toml"
    spec.write_text(text, encoding="utf-8")
    err = cli.fails("campaign", "create", spec)
    n = sum(math.comb(4, k) * math.comb(999, k - 1) for k in (2, 3, 4))
    assert f"the space holds {n:,} compositions (4 elements, 2-4 components, step 0.001)" in err
    assert "more than max_candidates = 200,000" in err and "use a larger step" in err
    assert cli.json("campaign", "list") == []


def test_create_refuses_a_misspelt_key(cli: Cli, tmp_path: Path) -> None:
    text = LI_TM.read_text(encoding="utf-8").replace("charge_balanced", "charge_balance")
    spec = tmp_path / "typo.toml"
    spec.write_text(text, encoding="utf-8")
    err = cli.fails("campaign", "create", spec)
    assert "unknown key 'compositions.charge_balance'" in err
    assert "allowed here: charge_balanced, elements" in err


def test_ingest_formulas_and_propose(cli: Cli) -> None:
    cli("campaign", "create", LI_TM)
    res = cli.json(
        "ingest",
        "li_tm_oxides",
        "-",
        input="composition,formation_energy\nFe2O3,-1.7\nMnO2,-1.6\nLi2O,-2.0\n",
    )
    assert res["stored"] == 3
    err = cli.fails("ingest", "li_tm_oxides", "-", input="composition,formation_energy\nNiO,-1\n")
    assert "<stdin>, line 2, column 'composition': 'NiO' holds ['Ni']" in err
    batch = cli.json("propose", "li_tm_oxides", "-n", "2")
    assert len(batch["proposals"]) == 2
    for p in batch["proposals"]:
        assert p["candidate"] is not None
        assert abs(sum(p["params"].values()) - 1.0) < 1e-9
        assert set(p["params"]) == {"Li", "Fe", "Mn", "O"}
