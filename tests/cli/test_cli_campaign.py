"""`loop campaign create|list|show|update|export|import` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli

from surrogates import SURROGATES, load_builtin

ROOT = Path(__file__).resolve().parents[2]
P3HT = ROOT / "examples" / "p3ht.toml"
COMPOSITION = ROOT / "examples" / "composition.toml"

GOOD_SPEC = """\
name = "small"
budget = 10

[[parameters]]
type = "float"
name = "temp"
low = 1.0
high = 5.0

[[objectives]]
name = "y"
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- create -------------------------------------------------------------------------------------


def test_create_pool_campaign(cli: Cli) -> None:
    res = cli("campaign", "create", P3HT)
    assert res.stdout.strip() == "created campaign 'p3ht' with a pool of 178 candidates"
    data = cli.json("campaign", "create", P3HT, "--name", "p3ht-b")
    assert data["name"] == "p3ht-b" and data["candidates"] == 178
    assert data["spec"]["name"] == "p3ht-b" and data["spec"]["budget"] == 60
    # the pool path is stored resolved, so the campaign works from any folder
    assert Path(data["spec"]["pool"]["path"]).is_absolute()


def test_create_continuous_campaign(cli: Cli) -> None:
    res = cli("campaign", "create", COMPOSITION)
    assert res.stdout.strip() == "created campaign 'alloy_anneal'"


def test_create_twice_is_refused(cli: Cli) -> None:
    cli("campaign", "create", P3HT)
    err = cli.fails("campaign", "create", P3HT)
    assert "a campaign named 'p3ht' already exists" in err
    assert "hint:" in err and "--name" in err


def test_create_missing_file(cli: Cli, tmp_path: Path) -> None:
    err = cli.fails("campaign", "create", tmp_path / "nope.toml")
    assert "nope.toml does not exist" in err and "hint:" in err


BAD_SPECS = {
    "unknown_key": (
        "batchsize = 3\n" + GOOD_SPEC,
        ["unknown key 'batchsize'"],
        ["remove 'batchsize' or fix its spelling", "batch_size"],
    ),
    "unknown_key_in_parameter": (
        GOOD_SPEC.replace("low = 1.0", "lower = 1.0"),
        ["unknown key 'parameters[0] ('temp').lower'", "missing key 'parameters[0] ('temp').low'"],
        ["add 'low'", "allowed here: high, log, low, name, type, unit"],
    ),
    "wrong_type": (
        GOOD_SPEC.replace("budget = 10", 'budget = "ten"'),
        ["wrong type for 'budget'", "'ten'"],
        ["give 'budget' a value"],
    ),
    "empty_bounds": (
        GOOD_SPEC.replace("high = 5.0", "high = 1.0"),
        ["parameters[0] ('temp')", "empty bounds for 'temp'", "low=1.0 must be below high=1.0"],
        [],
    ),
    "duplicate_names": (
        GOOD_SPEC.replace('name = "y"', 'name = "temp"'),
        ["duplicate name 'temp'", "parameter 'temp'", "objective 'temp'", "must be unique"],
        [],
    ),
    "bad_toml": (GOOD_SPEC + "budget = = 3\n", ["not valid TOML", "line"], ["fix the TOML"]),
    "unknown_element": (
        GOOD_SPEC + '[[parameters]]\ntype = "composition"\nname = "alloy"\n'
        'elements = ["Fe", "Xx"]\n',
        ["parameters[1] ('alloy').elements", "not chemical element symbols: ['Xx']"],
        [],
    ),
    "unknown_surrogate": (
        GOOD_SPEC + '[model]\nsurrogate = "forest"\n',
        ["forest", "gp"],
        ["[model]"],
    ),
    "unknown_parameter_type": (
        GOOD_SPEC.replace('type = "float"', 'type = "real"'),
        ["parameters[0] ('temp')", "'real'"],
        ["float, int, categorical, composition"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_refused_naming_key_and_fix(cli: Cli, tmp_path: Path, case: str) -> None:
    text, in_message, in_hint = BAD_SPECS[case]
    path = _write(tmp_path, f"{case}.toml", text)
    err = cli.fails("campaign", "create", path)
    message, _, hint = err.partition("\n  hint: ")
    assert str(path) in message
    for fragment in in_message:
        assert fragment in message, (fragment, err)
    assert hint.strip(), "every refusal says how to fix it"
    for fragment in in_hint:
        assert fragment in hint, (fragment, err)
    assert cli.json("campaign", "list") == [], "nothing is stored"


def test_good_small_spec_is_accepted(cli: Cli, tmp_path: Path) -> None:
    # the bad specs above are this one with one mistake each
    path = _write(tmp_path, "small.toml", GOOD_SPEC)
    assert cli("campaign", "create", path).stdout.strip() == "created campaign 'small'"


# -- list and show ------------------------------------------------------------------------------


def test_list_empty_and_filled(cli: Cli) -> None:
    assert "no campaigns yet" in cli("campaign", "list").stdout
    cli("campaign", "create", P3HT)
    cli("campaign", "create", COMPOSITION)
    rows = cli.json("campaign", "list")
    assert sorted(r["name"] for r in rows) == ["alloy_anneal", "p3ht"]
    p3ht = next(r for r in rows if r["name"] == "p3ht")
    assert p3ht == {
        **p3ht,
        "status": "active",
        "spec_version": 1,
        "budget": 60,
        "used": 0,
        "measurements": 0,
    }
    table = cli("campaign", "list").stdout
    assert "p3ht" in table and "alloy_anneal" in table


def test_show(cli: Cli) -> None:
    cli("campaign", "create", P3HT)
    out = cli("campaign", "show", "p3ht").stdout
    assert "p3ht (active, spec v1)" in out and '"budget": 60' in out
    data = cli.json("campaign", "show", "p3ht")
    assert data["spec_version"] == 1 and data["spec"]["objectives"][0]["name"] == "conductivity"
    assert "history" not in data


def test_show_unknown_campaign(cli: Cli) -> None:
    err = cli.fails("campaign", "show", "nope")
    assert "no campaign named 'nope'" in err and "loop campaign create" in err


# -- update -------------------------------------------------------------------------------------


def test_update_changes_settings_and_keeps_history(cli: Cli) -> None:
    cli("campaign", "create", P3HT)
    res = cli("campaign", "update", "p3ht", "--budget", "80", "--batch-size", "2")
    assert res.stdout.strip() == "campaign 'p3ht' is now at spec v2"
    data = cli.json("campaign", "update", "p3ht", "--surrogate", "gp", "--acquisition", "qucb")
    assert data["spec_version"] == 3
    show = cli.json("campaign", "show", "p3ht", "--history")
    spec = show["spec"]
    assert (spec["budget"], spec["batch_size"]) == (80, 2)
    assert spec["model"]["surrogate"] == "gp" and spec["model"]["acquisition"] == "qucb"
    hist = show["history"]
    assert [h["version"] for h in hist] == [1, 2, 3]
    assert "budget=80" in hist[1]["note"] and "batch_size=2" in hist[1]["note"]
    assert "acquisition=qucb" in hist[2]["note"]
    text = cli("campaign", "show", "p3ht", "--history").stdout
    assert "v1 " in text and "v3 " in text
    # the new batch size is what propose uses
    batch = cli.json("propose", "p3ht")
    assert len(batch["proposals"]) == 2
    assert cli.json("status", "p3ht")["budget"] == {"total": 80, "used": 2, "left": 78}


def test_update_unknown_surrogate_lists_known_ones(cli: Cli) -> None:
    cli("campaign", "create", P3HT)
    err = cli.fails("campaign", "update", "p3ht", "--surrogate", "forest")
    assert "campaign 'p3ht': model: unknown surrogate 'forest'" in err
    # every registered family is listed, sorted, so a user sees all the choices
    load_builtin()
    assert f"known surrogates: {', '.join(sorted(SURROGATES))}" in err
    assert {"gp", "ensemble", "mc-dropout", "elemnet-ensemble", "cnn3d-ensemble"} <= set(SURROGATES)
    assert "hint:" in err
    err = cli.fails("campaign", "update", "p3ht", "--acquisition", "ei")
    assert "'ei'" in err or " ei" in err
    assert "qlognei" in err and "qucb" in err
    assert cli.json("campaign", "show", "p3ht")["spec_version"] == 1, "nothing changed"


def test_update_refusals(cli: Cli) -> None:
    cli("campaign", "create", P3HT)
    err = cli.fails("campaign", "update", "p3ht")
    assert "nothing to change" in err and "--budget" in err
    err = cli.fails("campaign", "update", "p3ht", "--budget", "0")
    assert "budget" in err
    cli("propose", "p3ht", "-n", "3")
    err = cli.fails("campaign", "update", "p3ht", "--budget", "2")
    assert "budget 2 is below the 3 experiments already proposed" in err
    assert "at least 3" in err
    err = cli.fails("campaign", "update", "nope", "--budget", "5")
    assert "no campaign named 'nope'" in err
    assert cli.json("campaign", "show", "p3ht")["spec_version"] == 1


# -- export and import --------------------------------------------------------------------------


def _campaign_with_data(cli: Cli) -> list[dict[str, Any]]:
    cli("campaign", "create", P3HT)
    cli("campaign", "update", "p3ht", "--budget", "50")
    props = cli.json("propose", "p3ht", "-n", "3")["proposals"]
    rows = "\n".join(f"{p['id']},{10 + i}" for i, p in enumerate(props[:2]))
    cli("ingest", "p3ht", "-", input=f"proposal_id,conductivity\n{rows}\n")
    return props


def test_export_import_round_trip(cli: Cli, tmp_path: Path) -> None:
    _campaign_with_data(cli)
    bundle = tmp_path / "p3ht.bundle.json"
    res = cli("campaign", "export", "p3ht", "-o", bundle)
    assert "wrote campaign 'p3ht'" in res.stderr and "2 measurements, 3 proposals" in res.stderr
    data = json.loads(bundle.read_text(encoding="utf-8"))
    assert data["format"] == "loop-campaign-bundle/1" and len(data["candidates"]) == 178
    # to stdout when no file is given
    assert json.loads(cli("campaign", "export", "p3ht").stdout)["campaign"]["name"] == "p3ht"

    res = cli("campaign", "import", bundle, "--name", "copy")
    assert res.stdout.strip() == "imported campaign 'copy' (2 measurements)"
    a, b = cli.json("status", "p3ht"), cli.json("status", "copy")
    for key in ("budget", "proposals", "measurements", "spec_version"):
        assert a[key] == b[key], key
    assert a["best"]["conductivity"]["value"] == b["best"]["conductivity"]["value"] == 11
    hist = cli.json("campaign", "show", "copy", "--history")["history"]
    assert [h["version"] for h in hist] == [1, 2]

    # into another store, under its own name
    other = Cli(tmp_path / "other")
    other("campaign", "import", bundle)
    assert other.json("status", "p3ht")["measurements"] == 2


def test_import_refusals(cli: Cli, tmp_path: Path) -> None:
    _campaign_with_data(cli)
    bundle = tmp_path / "b.json"
    cli("campaign", "export", "p3ht", "-o", bundle)
    err = cli.fails("campaign", "import", bundle)
    assert "a campaign named 'p3ht' already exists" in err and "--name" in err
    err = cli.fails("campaign", "import", tmp_path / "gone.json")
    assert "gone.json: no such file" in err
    junk = _write(tmp_path, "junk.json", "{not json")
    err = cli.fails("campaign", "import", junk)
    assert "junk.json: not a JSON bundle" in err and "loop campaign export" in err
    wrong = _write(tmp_path, "wrong.json", json.dumps({"format": "something-else"}))
    err = cli.fails("campaign", "import", wrong)
    assert "not a campaign bundle" in err and "loop-campaign-bundle/1" in err
    broken = json.loads(bundle.read_text(encoding="utf-8"))
    del broken["proposals"]
    err = cli.fails(
        "campaign",
        "import",
        _write(tmp_path, "broken.json", json.dumps(broken)),
        "--name",
        "broken",
    )
    assert "incomplete or damaged" in err
    names = sorted(r["name"] for r in cli.json("campaign", "list"))
    assert names == ["p3ht"], "a refused import stores nothing"


def test_campaign_help(cli: Cli) -> None:
    out = cli("campaign", "--help").stdout
    for command in ("create", "list", "show", "update", "export", "import"):
        assert command in out
