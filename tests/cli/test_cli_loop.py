"""The loop commands through Typer's CliRunner: propose, ingest, status, export, demo, proposal
and db, with their refusals (exit code 2 and a message naming the file, row, column or key)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli
from typer.testing import CliRunner

from loop.cli import app

ROOT = Path(__file__).resolve().parents[2]
P3HT = ROOT / "examples" / "p3ht.toml"
COMPOSITION = ROOT / "examples" / "composition.toml"

TWO_OBJECTIVES = """\
name = "two"
budget = 10

[[parameters]]
type = "float"
name = "x"
low = 0.0
high = 1.0

[[objectives]]
name = "strength"

[[objectives]]
name = "cost"
direction = "minimize"
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def p3ht(cli: Cli) -> Cli:
    cli("campaign", "create", P3HT)
    return cli


def _conductivity(params: dict[str, float]) -> float:
    """A made-up but deterministic response."""
    return round(1.0 + 0.05 * params["p3ht"] + 0.3 * params["d1"] + 0.1 * params["d8"], 6)


def _hardness(params: dict[str, Any]) -> float:
    gas = {"air": 0.0, "argon": 12.0, "nitrogen": 6.0}[params["atmosphere"]]
    return round(
        100
        + 0.1 * params["temperature"]
        + 2 * params["hold_time"]
        + 50 * params["Fe"]
        - 30 * params["Co"]
        + gas,
        6,
    )


def _results_csv(props: list[dict[str, Any]], objective: str = "conductivity") -> str:
    f = _conductivity if objective == "conductivity" else _hardness
    return f"proposal_id,{objective}\n" + "".join(f"{p['id']},{f(p['params'])}\n" for p in props)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- help and imports ---------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for word in (
        "propose",
        "ingest",
        "status",
        "export",
        "demo",
        "campaign",
        "proposal",
        "db",
        "--db",
        "--artifacts",
    ):
        assert word in res.stdout, word
    for group, commands in {
        "proposal": ("list", "fail", "abandon"),
        "db": ("upgrade", "current"),
    }.items():
        out = CliRunner().invoke(app, [group, "--help"]).stdout
        assert all(c in out for c in commands), (group, out)


def _run_without_torch(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from loop.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "sys.stdout.write(r.stdout)\n"
        "assert r.exit_code == 0, (r.exit_code, r.output)\n"
        "heavy = sorted(m for m in ('torch', 'botorch', 'gpytorch') if m in sys.modules)\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_help_does_not_import_torch() -> None:
    proc = _run_without_torch(["--help"])
    assert proc.returncode == 0, proc.stderr
    assert "propose" in proc.stdout


def test_status_does_not_import_torch(p3ht: Cli) -> None:
    props = p3ht.json("propose", "p3ht", "-n", "3")["proposals"]
    p3ht("ingest", "p3ht", "-", input=_results_csv(props))
    args = ["--db", p3ht.url, "--artifacts", str(p3ht.artifacts), "status", "p3ht"]
    proc = _run_without_torch(args)
    assert proc.returncode == 0, proc.stderr
    assert "3 measurements" in proc.stdout
    proc = _run_without_torch([*args, "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["measurements"] == 3


def test_store_that_cannot_be_opened() -> None:
    res = CliRunner().invoke(
        app, ["--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "status", "x"]
    )
    assert res.exit_code == 2
    assert "cannot open the database" in res.stderr and "--db" in res.stderr


# -- propose ------------------------------------------------------------------------------------


def test_propose_table_and_json(p3ht: Cli) -> None:
    out = p3ht("propose", "p3ht").stdout
    assert "p3ht: batch 1 (sobol)" in out
    assert "p3ht=" in out and "d8=" in out
    data = p3ht.json("propose", "p3ht", "-n", "3")
    assert (data["campaign"], data["batch"], data["strategy"]) == ("p3ht", 2, "sobol")
    assert data["model_fit"] is None
    props = data["proposals"]
    assert len(props) == 3 and [p["id"] for p in props] == [5, 6, 7]
    for p in props:
        assert p["status"] == "proposed" and p["batch"] == 2
        assert set(p["params"]) == {"p3ht", "d1", "d2", "d6", "d8"}
        assert isinstance(p["candidate"], int) and 0 <= p["candidate"] < 178


def test_propose_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    picks = []
    for sub in ("a", "b"):
        c = Cli(tmp_path / sub)
        c("campaign", "create", P3HT)
        picks.append(
            [p["candidate"] for p in c.json("propose", "p3ht", "--seed", "7")["proposals"]]
        )
    assert picks[0] == picks[1]


def _two_csv(props: list[dict[str, Any]]) -> str:
    # strength rises with x, and so does cost: every x is a trade-off
    rows = "".join(f"{p['id']},{p['params']['x']},{p['params']['x'] ** 2 + 0.1}\n" for p in props)
    return "proposal_id,strength,cost\n" + rows


def test_two_objectives_propose_by_hypervolume_and_report_the_front(
    cli: Cli, tmp_path: Path
) -> None:
    cli("campaign", "create", _write(tmp_path / "two.toml", TWO_OBJECTIVES))
    first = cli.json("propose", "two", "-n", "3")
    assert first["strategy"] == "sobol"
    cli("ingest", "two", "-", input=_two_csv(first["proposals"]))
    second = cli.json("propose", "two", "-n", "2")
    assert second["strategy"] == "gp+qlognehvi"
    xs = [p["params"]["x"] for p in second["proposals"]]
    assert len(set(xs)) == 2 and all(0 <= x <= 1 for x in xs)
    assert all(set(p["predictions"]) == {"strength", "cost"} for p in second["proposals"])
    cli("ingest", "two", "-", input=_two_csv(second["proposals"]))
    status = cli.json("status", "two")
    front = status["pareto_front"]
    # every measurement is a trade-off here, so all five are on the front, strongest first
    assert len(front) == 5
    strengths = [f["values"]["strength"] for f in front]
    assert strengths == sorted(strengths, reverse=True)
    assert cli.json("status", "two")["budget"]["used"] == 5


def test_propose_refuses_when_the_budget_is_spent(cli: Cli, tmp_path: Path) -> None:
    spec = COMPOSITION.read_text(encoding="utf-8").replace("budget = 40", "budget = 3")
    assert "budget = 3" in spec
    cli("campaign", "create", _write(tmp_path / "small.toml", spec))
    data = cli.json("propose", "alloy_anneal", "-n", "5")
    assert len(data["proposals"]) == 3
    assert any("batch cut to 3" in n for n in data["notes"])
    err = cli.fails("propose", "alloy_anneal")
    assert "spent its budget (3 of 3 experiments)" in err
    assert "loop campaign update alloy_anneal --budget" in err
    cli("campaign", "update", "alloy_anneal", "--budget", "4")
    assert len(cli.json("propose", "alloy_anneal")["proposals"]) == 1


def test_propose_refusals(p3ht: Cli) -> None:
    err = p3ht.fails("propose", "nope")
    assert "no campaign named 'nope'" in err
    err = p3ht.fails("propose", "p3ht", "-n", "0")
    assert "-n must be at least 1" in err


def test_pending_pool_candidates_are_not_proposed_again_sobol(p3ht: Cli) -> None:
    # large batches from a pool of 178, so a planner that forgot the pending ones would repeat
    first = [p["candidate"] for p in p3ht.json("propose", "p3ht", "-n", "40")["proposals"]]
    second = [p["candidate"] for p in p3ht.json("propose", "p3ht", "-n", "40")["proposals"]]
    assert len(set(first)) == len(first) == 40
    assert len(set(second)) == len(second) == 20, "the budget of 60 cuts the second batch"
    assert not set(first) & set(second)
    assert p3ht.json("status", "p3ht")["proposals"]["proposed"] == 60


def test_pending_pool_candidates_are_not_proposed_again_gp(p3ht: Cli) -> None:
    initial = p3ht.json("propose", "p3ht", "-n", "6")["proposals"]
    assert {p["strategy"] for p in initial} == {"sobol"}
    res = p3ht("ingest", "p3ht", "-", input=_results_csv(initial))
    assert "6 rows, 6 stored, 0 already stored" in res.stdout
    a = p3ht.json("propose", "p3ht")
    b = p3ht.json("propose", "p3ht")
    assert a["strategy"] == b["strategy"] == "gp+qlognei"
    assert a["model_fit"] is not None and b["model_fit"]["reused"] is True
    picks_a = [p["candidate"] for p in a["proposals"]]
    picks_b = [p["candidate"] for p in b["proposals"]]
    measured = {p["candidate"] for p in initial}
    assert len(set(picks_a)) == 4 and len(set(picks_b)) == 4
    assert not set(picks_a) & set(picks_b), "a pending candidate was proposed again"
    assert not (set(picks_a) | set(picks_b)) & measured
    for p in a["proposals"]:
        pred = p["predictions"]["conductivity"]
        assert pred["std"] >= 0 and isinstance(pred["mean"], float)
        assert p["acq_value"] is not None
    table = p3ht("proposal", "list", "p3ht", "--status", "completed").stdout
    assert table.count("sobol") == 6
    st = p3ht.json("status", "p3ht")
    assert st["proposals"]["completed"] == 6 and st["proposals"]["proposed"] == 8
    assert st["last_fit"]["kind"] == "gp"
    # --artifacts is where checkpoints go
    assert list((p3ht.artifacts / "p3ht").glob("*.pt"))


def _check_composition_proposal(params: dict[str, Any]) -> None:
    assert isinstance(params["temperature"], float) and 300 <= params["temperature"] <= 900
    assert isinstance(params["hold_time"], int) and 1 <= params["hold_time"] <= 24
    assert params["atmosphere"] in ("air", "argon", "nitrogen")
    fe, ni, co = params["Fe"], params["Ni"], params["Co"]
    assert abs(fe + ni + co - 1.0) <= 1e-6
    assert 0.2 - 1e-9 <= fe <= 1.0 + 1e-9
    assert -1e-9 <= ni <= 0.6 + 1e-9
    assert -1e-9 <= co <= 0.5 + 1e-9


def test_composition_proposals_respect_the_space(cli: Cli) -> None:
    cli("campaign", "create", COMPOSITION)
    sobol = cli.json("propose", "alloy_anneal", "-n", "8")
    assert sobol["strategy"] == "sobol" and len(sobol["proposals"]) == 8
    for p in sobol["proposals"]:
        _check_composition_proposal(p["params"])
    assert len({p["params"]["atmosphere"] for p in sobol["proposals"]}) > 1
    res = cli.json(
        "ingest", "alloy_anneal", "-", input=_results_csv(sobol["proposals"], "hardness")
    )
    assert res["stored"] == 8
    gp = cli.json("propose", "alloy_anneal", "-n", "2")
    assert gp["strategy"] == "gp+qucb" and len(gp["proposals"]) == 2
    for p in gp["proposals"]:
        _check_composition_proposal(p["params"])
        assert p["candidate"] is None
    # the proposals can be measured and ingested as they are
    assert (
        cli.json("ingest", "alloy_anneal", "-", input=_results_csv(gp["proposals"], "hardness"))[
            "stored"
        ]
        == 2
    )


# -- ingest -------------------------------------------------------------------------------------


def test_ingest_csv_twice(p3ht: Cli, tmp_path: Path) -> None:
    props = p3ht.json("propose", "p3ht", "-n", "3")["proposals"]
    f = _write(tmp_path / "batch1.csv", _results_csv(props))
    res = p3ht("ingest", "p3ht", f)
    assert res.stdout.strip() == f"{f}: 3 rows, 3 stored, 0 already stored"
    res = p3ht("ingest", "p3ht", f)
    assert res.stdout.strip() == f"{f}: 3 rows, 0 stored, 3 already stored"
    st = p3ht.json("status", "p3ht")
    assert st["measurements"] == 3 and st["proposals"]["completed"] == 3


def test_ingest_jsonl_with_parameters_and_std(p3ht: Cli, tmp_path: Path) -> None:
    rows = [
        {
            "p3ht": 45,
            "d1": 0,
            "d2": 55,
            "d6": 0,
            "d8": 0,
            "conductivity": 12.77,
            "conductivity_std": 0.4,
            "operator": "ada",
        },
        {
            "p3ht": 75,
            "d1": 0,
            "d2": 25,
            "d6": 0,
            "d8": 0,
            "conductivity": 13.19,
            "measurement_id": "run-7",
        },
    ]
    f = _write(tmp_path / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = p3ht.json("ingest", "p3ht", f)
    assert data == {**data, "rows": 2, "stored": 2, "already_stored": 0}
    assert len(data["measurement_ids"]) == 2
    out = tmp_path / "export.csv"
    p3ht("export", "p3ht", "-o", out)
    text = out.read_text(encoding="utf-8")
    assert "conductivity_std" in text.splitlines()[0]
    exported = p3ht.json("export", "p3ht")
    assert exported[0]["conductivity_std"] == 0.4 and exported[0]["operator"] == "ada"
    assert exported[1]["measurement_id"] == "run-7" and exported[0]["candidate"] == 0


def test_ingest_from_stdin(p3ht: Cli) -> None:
    props = p3ht.json("propose", "p3ht", "-n", "2")["proposals"]
    text = "".join(json.dumps({"proposal_id": p["id"], "conductivity": 3.5}) + "\n" for p in props)
    res = p3ht("ingest", "p3ht", "-", "--source", "robot", input=text)
    assert res.stdout.strip() == "<stdin>: 2 rows, 2 stored, 0 already stored"
    exported = p3ht.json("export", "p3ht")
    assert [r["source"] for r in exported] == ["robot", "robot"]
    assert [r["file"] for r in exported] == ["<stdin>", "<stdin>"]
    assert p3ht.json("ingest", "p3ht", "-", input=text)["already_stored"] == 2


def test_ingest_bad_file_names_every_row_and_stores_nothing(p3ht: Cli, tmp_path: Path) -> None:
    props = p3ht.json("propose", "p3ht", "-n", "3")["proposals"]
    good = _results_csv(props).splitlines()
    f = _write(
        tmp_path / "bad.csv",
        "\n".join([good[0], good[1], f"{props[1]['id']},nan", good[3], "999,1.0"]) + "\n",
    )
    err = p3ht.fails("ingest", "p3ht", f)
    assert f"{f}: 2 problem(s); nothing was stored" in err
    assert f"{f}, line 3, column 'conductivity': 'nan' is not a finite number" in err
    assert f"{f}, line 5, column 'proposal_id': proposal 999 does not belong" in err
    assert "hint: fix the rows listed" in err
    st = p3ht.json("status", "p3ht")
    assert st["measurements"] == 0 and st["proposals"]["completed"] == 0


@pytest.mark.parametrize(
    "text,fragments",
    [
        (
            "p3ht,d1,d2,d6,d8,conductivity,colour\n45,0,55,0,0,1,red\n",
            ["line 2, column 'colour': unknown column", "p3ht, d1, d2, d6, d8, conductivity"],
        ),
        (
            "p3ht,d1,d2,conductivity\n45,0,55,1\n",
            ["line 2, missing parameter column(s) ['d6', 'd8']"],
        ),
        (
            "p3ht,d1,d2,d6,d8,conductivity\n45,0,55,0,abc,1\n",
            ["line 2, column 'd8': not a number ('abc')"],
        ),
        (
            "p3ht,d1,d2,d6,d8,conductivity\n45,0,55,0,0,1\n45,0,55,0\n",
            ["line 3: 4 fields, the header has 6"],
        ),
    ],
    ids=["unknown-column", "missing-column", "bad-type", "ragged"],
)
def test_ingest_refusals_name_file_line_and_column(
    p3ht: Cli, tmp_path: Path, text: str, fragments: list[str]
) -> None:
    f = _write(tmp_path / "r.csv", text)
    err = p3ht.fails("ingest", "p3ht", f)
    assert f"{f}, {fragments[0]}" in err, err
    for fragment in fragments[1:]:
        assert fragment in err, (fragment, err)
    assert "hint:" in err
    assert p3ht.json("status", "p3ht")["measurements"] == 0


def test_ingest_composition_formula_column(cli: Cli, tmp_path: Path) -> None:
    cli("campaign", "create", COMPOSITION)
    header = "temperature,hold_time,atmosphere,alloy,hardness\n"
    f = _write(tmp_path / "alloys.csv", header + "500,4,argon,Fe0.5Ni0.3Co0.2,210\n")
    assert cli.json("ingest", "alloy_anneal", f)["stored"] == 1
    (row,) = cli.json("export", "alloy_anneal")
    assert (row["Fe"], row["Ni"], row["Co"]) == pytest.approx((0.5, 0.3, 0.2))
    bad = _write(
        tmp_path / "bad.csv", header + "500,4,argon,Fe0.5Ni0.3Co0.2,1\n600,5,air,Fe0.5Xx0.5,2\n"
    )
    err = cli.fails("ingest", "alloy_anneal", bad)
    assert (
        f"{bad}, line 3, column 'alloy': 'Fe0.5Xx0.5' holds ['Xx'], which are not "
        "chemical elements" in err
    )
    assert cli.json("status", "alloy_anneal")["measurements"] == 1


def test_ingest_conflicting_second_result(p3ht: Cli) -> None:
    (p,) = p3ht.json("propose", "p3ht", "-n", "1")["proposals"]
    p3ht("ingest", "p3ht", "-", input=f"proposal_id,conductivity\n{p['id']},5\n")
    err = p3ht.fails("ingest", "p3ht", "-", input=f"proposal_id,conductivity\n{p['id']},6\n")
    assert f"<stdin>, line 2: proposal {p['id']} already has a result" in err
    assert "replicate=true" in err
    res = p3ht.json(
        "ingest", "p3ht", "-", input=f"proposal_id,conductivity,replicate\n{p['id']},6,true\n"
    )
    assert res["stored"] == 1
    assert p3ht.json("status", "p3ht")["measurements"] == 2


def test_ingest_other_refusals(p3ht: Cli, tmp_path: Path) -> None:
    err = p3ht.fails("ingest", "p3ht", tmp_path / "gone.csv")
    assert "gone.csv: no such file" in err
    err = p3ht.fails("ingest", "p3ht", "-", "--format", "xml", input="")
    assert "--format 'xml' is not known" in err and "csv or jsonl" in err
    err = p3ht.fails("ingest", "nope", "-", input="a\n1\n")
    assert "no campaign named 'nope'" in err
    err = p3ht.fails("ingest", "p3ht", "-", "--format", "jsonl", input="p3ht,d1\n")
    assert "<stdin>, line 1: not valid JSON" in err


# -- status and export --------------------------------------------------------------------------


def test_status_text_and_json(p3ht: Cli) -> None:
    out = p3ht("status", "p3ht").stdout
    assert "p3ht (active, spec v1, pool of 178): budget 0/60 used, 0 measurements" in out
    assert "no measurements yet" in out and "no model fit yet" in out
    props = p3ht.json("propose", "p3ht", "-n", "3")["proposals"]
    p3ht("ingest", "p3ht", "-", input=_results_csv(props[:2]))
    st = p3ht.json("status", "p3ht")
    assert st["budget"] == {"total": 60, "used": 3, "left": 57}
    assert st["proposals"] == {
        "proposed": 1,
        "running": 0,
        "completed": 2,
        "failed": 0,
        "abandoned": 0,
    }
    assert [p["id"] for p in st["pending"]] == [props[2]["id"]]
    best = max(props[:2], key=lambda p: _conductivity(p["params"]))
    assert st["best"]["conductivity"]["value"] == _conductivity(best["params"])
    assert st["best"]["conductivity"]["proposal"] == best["id"]
    out = p3ht("status", "p3ht").stdout
    assert "budget 3/60 used, 2 measurements" in out
    assert "best so far" in out and "conductivity (maximize)" in out
    assert "1 proposal(s) waiting to be run" in out
    # a job in progress shows its worker and lease; --watch refreshes the same view
    p3ht("run", "p3ht", "--via", "worker", "--budget", "3")  # finishes the waiting one
    p3ht.json("propose", "p3ht", "-n", "1")
    from db import open_store
    from loop.jobs import claim_job

    store = open_store(p3ht.url)
    with store.session_scope() as session:
        claim_job(session=session, name="p3ht", worker="rig-7", lease_seconds=600)
    store.dispose()
    out = p3ht("status", "p3ht", "--watch", "--interval", "0.05", "--times", "2").stdout
    assert "running jobs" in out and "rig-7" in out and "s left" in out
    assert "--interval" in p3ht.fails("status", "p3ht", "--watch", "--interval", "0")
    err = p3ht.fails("status", "nope")
    assert "no campaign named 'nope'" in err


def test_export_csv_to_file_and_stdout(p3ht: Cli, tmp_path: Path) -> None:
    props = p3ht.json("propose", "p3ht", "-n", "2")["proposals"]
    p3ht("ingest", "p3ht", "-", input=_results_csv(props))
    out = tmp_path / "out" / "p3ht.csv"
    out.parent.mkdir()
    res = p3ht("export", "p3ht", "-o", out)
    assert res.stderr.strip() == f"wrote 2 measurements to {out}"
    lines = out.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["measurement", "measurement_id", "proposal_id", "batch", "candidate"]
    assert {"p3ht", "d8", "conductivity", "predicted_conductivity", "strategy"} <= set(header)
    assert len(lines) == 3
    assert p3ht("export", "p3ht").stdout.splitlines() == lines
    rows = p3ht.json("export", "p3ht")
    assert [r["proposal_id"] for r in rows] == [p["id"] for p in props]
    assert [r["conductivity"] for r in rows] == [_conductivity(p["params"]) for p in props]
    err = p3ht.fails("export", "nope")
    assert "no campaign named 'nope'" in err


# -- proposal list | fail | abandon -------------------------------------------------------------


def test_proposal_list_fail_abandon(p3ht: Cli) -> None:
    props = p3ht.json("propose", "p3ht", "-n", "4")["proposals"]
    a, b, c, _ = (p["id"] for p in props)
    listed = p3ht.json("proposal", "list", "p3ht")
    assert [p["id"] for p in listed] == [p["id"] for p in props]
    table = p3ht("proposal", "list", "p3ht").stdout
    assert "p3ht: proposals" in table and "proposed" in table

    res = p3ht("proposal", "fail", a, "--reason", "film cracked")
    assert res.stdout.strip() == f"proposal {a} failed: film cracked"
    res = p3ht("proposal", "abandon", b, "--reason", "out of D8")
    assert res.stdout.strip() == f"proposal {b} abandoned"
    failed = p3ht.json("proposal", "list", "p3ht", "--status", "failed")
    assert [p["id"] for p in failed] == [a] and failed[0]["reason"] == "film cracked"
    st = p3ht.json("status", "p3ht")
    assert st["proposals"]["failed"] == 1 and st["proposals"]["abandoned"] == 1
    assert st["budget"]["used"] == 3, "abandoned proposals do not count against the budget"

    # a failed candidate is not proposed again; an abandoned one may be
    failed_cand = props[0]["candidate"]
    later = p3ht.json("propose", "p3ht", "-n", "20")["proposals"]
    assert failed_cand not in {p["candidate"] for p in later}

    err = p3ht.fails("proposal", "fail", a, "--reason", "again")
    assert f"proposal {a} is failed" in err and "hint:" in err
    p3ht("ingest", "p3ht", "-", input=f"proposal_id,conductivity\n{c},1.5\n")
    err = p3ht.fails("proposal", "abandon", c)
    assert f"proposal {c} is completed" in err and "leave it as it is" in err
    err = p3ht.fails("proposal", "abandon", 9999)
    assert "no proposal with id 9999" in err and "loop proposal list" in err
    err = p3ht.fails("proposal", "list", "p3ht", "--status", "lost")
    assert "unknown status 'lost'" in err and "proposed" in err
    # --reason is required to fail a proposal: a usage error, also exit code 2
    res = p3ht("proposal", "fail", props[3]["id"], code=2)
    assert "--reason" in res.output


# -- db -----------------------------------------------------------------------------------------


def test_db_current_and_upgrade(cli: Cli) -> None:
    from migrations import HEAD

    assert cli("db", "current").stdout.strip() == "empty"
    res = cli("db", "upgrade")
    assert res.stdout.strip().endswith(f": empty -> {HEAD}")
    assert cli("db", "current").stdout.strip() == HEAD
    assert cli("db", "upgrade").stdout.strip().endswith(f": {HEAD} -> {HEAD}")
    # an upgraded store is ready for use
    cli("campaign", "create", P3HT)
    assert cli.json("status", "p3ht")["candidates"] == 178


# -- demo ---------------------------------------------------------------------------------------


def test_demo_runs_a_short_loop(cli: Cli) -> None:
    out = cli("demo", "--rounds", "1", "--batch", "2").stdout
    assert "campaign 'demo-p3ht': 178 candidate blends" in out
    # the initial design (6) in batches of 2, then one model-based round
    assert "round  3 (     sobol)" in out and "round  4 (gp+qlognei)" in out
    assert "after 8 experiments" in out and "enhancement" in out
    st = cli.json("status", "demo-p3ht")
    assert st["measurements"] == 8 and st["proposals"]["completed"] == 8
    assert st["last_fit"] is not None
    # a second demo does not touch the first campaign
    out = cli("demo", "--rounds", "0", "--batch", "3").stdout
    assert "campaign 'demo-p3ht-2'" in out and "after 6 experiments" in out
    assert cli.json("status", "demo-p3ht")["measurements"] == 8
