"""`loop report`: every campaign kind that exists gets its sections, the JSON numbers match the
store, the HTML is self-contained and renders in headless Chromium, and an empty campaign gives
a helpful page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from db import Store, crud, open_store
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.ingest import ingest_rows
from loop.report import build_report, load_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path) -> Iterator[Store]:
    """SQLite only: the report reads through the same data access functions on both stores."""
    s = open_store(sqlite_url, artifact_dir=tmp_path / "artifacts")
    yield s
    s.dispose()


TWO_OBJECTIVES = """\
name = "two"
budget = 20
batch_size = 4
initial_design = 6
[pool]
path = "grid.csv"
columns = ["x", "y"]
[[objectives]]
name = "strength"
direction = "maximize"
[[objectives]]
name = "cost"
direction = "minimize"
"""


def _hardness(p: dict[str, Any]) -> dict[str, float]:
    atm = {"air": 0.0, "argon": 15.0, "nitrogen": 8.0}[p["atmosphere"]]
    return {
        "hardness": 100
        + 200 * p["Fe"]
        - 50 * p["Co"]
        + p["temperature"] / 10
        + p["hold_time"]
        + atm
    }


def _formation(p: dict[str, Any]) -> dict[str, float]:
    return {"formation_energy": -1.5 * p["O"] - 0.3 * p["Li"] + 0.1 * p["Mn"]}


def _two(p: dict[str, Any]) -> dict[str, float]:
    return {"strength": p["x"] + 0.2 * p["y"], "cost": 1.0 - p["x"] ** 2 + 0.5 * p["y"]}


def _p3ht(store: Store) -> Callable[[dict[str, Any]], dict[str, float]]:
    from loop.simulators import make_simulator
    from loop.spec import parse_spec

    with store.session_scope() as session:
        spec = parse_spec(crud.get_campaign(session=session, name="p3ht").spec)
    sim = make_simulator(spec)
    rng = np.random.default_rng(0)
    return lambda p: sim.measure(p, rng)


def _campaign(store: Store, tmp_path: Path, kind: str, rounds: int = 3) -> str:
    """The campaign after `rounds` batches of 4: the initial design, then a model-based one."""
    specs = {
        "parameters": (ROOT / "examples" / "composition.toml", _hardness),
        "compositions": (ROOT / "examples" / "compositions" / "li_tm_oxides.toml", _formation),
        "pool": (ROOT / "examples" / "p3ht.toml", None),
        "two": (tmp_path / "two.toml", _two),
    }
    path, fn = specs[kind]
    if kind == "two":
        path.write_text(TWO_OBJECTIVES)
        grid = [f"{x / 9:.4f},{y / 5:.4f}" for x in range(10) for y in range(6)]
        (tmp_path / "grid.csv").write_text("x,y\n" + "\n".join(grid) + "\n")
    with store.session_scope() as session:
        rec = create_campaign(session=session, path=path)
    if fn is None:
        fn = _p3ht(store)
    for _ in range(rounds):
        with store.session_scope() as session:
            res = propose(session=session, name=rec.name, n=4, artifact_dir=store.artifact_dir)
        rows = [(i + 1, {"proposal_id": p.id, **fn(p.params)}) for i, p in enumerate(res.proposals)]
        with store.session_scope() as session:
            ingest_rows(session=session, name=rec.name, rows=rows)
    return rec.name


def _report(store: Store, name: str) -> tuple[dict[str, Any], str]:
    with store.session_scope() as session:
        ctx = load_context(session=session, name=name, artifact_dir=store.artifact_dir)
    return build_report(ctx)


def _check_against_store(store: Store, name: str, doc: dict[str, Any]) -> None:
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
        props = crud.list_proposals(session=session, campaign_id=rec.id)
        fits = crud.list_model_fits(session=session, campaign_id=rec.id)
    secs = doc["sections"]
    assert secs["summary"]["measurements"] == len(ms) > 0
    for o in rec.spec["objectives"]:
        vals = [m.values[o["name"]] for m in ms]
        best = max(vals) if o["direction"] == "maximize" else min(vals)
        assert secs["summary"]["best"][o["name"]]["value"] == best
        assert secs["progress"]["best_so_far"][o["name"]][-1] == best
        assert len(secs["progress"]["best_so_far"][o["name"]]) == len(ms)
    assert sum(b["proposed"] for b in secs["progress"]["batches"]) == len(props)
    decided = {r["proposal"]: r for r in secs["decisions"]["proposals"]}
    assert set(decided) == {p.id for p in props}
    by_prop = {m.proposal_id: m for m in ms}
    for p in props:
        r = decided[p.id]
        assert r["model_fit"] == p.model_fit_id and r["acq_value"] == p.acq_value
        assert r["measured"] == {k: by_prop[p.id].values[k] for k in r["measured"]}
    with_heldout = [f for f in fits if f.heldout]
    assert [r["fit"] for r in secs["diagnostics"]["fits"]] == [f.id for f in with_heldout]
    assert with_heldout, "the fixture never reached a model-based batch"
    last = secs["diagnostics"]["fits"][-1]
    first = rec.spec["objectives"][0]["name"]
    assert last["outcomes"][first]["n"] == len(with_heldout[-1].heldout)


@pytest.mark.parametrize(
    "kind,view",
    [
        ("parameters", "ternary"),
        ("compositions", "pairwise"),
        ("pool", "pairwise"),
        ("two", "pairwise"),
    ],
)
def test_report_of_each_campaign_kind(store: Store, tmp_path: Path, kind: str, view: str) -> None:
    name = _campaign(store, tmp_path, kind)
    doc, page = _report(store, name)
    secs = doc["sections"]
    expected = {"summary", "progress", "diagnostics", "decisions", "space", "representation"}
    assert expected <= set(secs)
    assert ("pareto" in secs) == (kind == "two")
    assert secs["space"]["view"] == view
    rep = secs["representation"]
    assert "error" not in rep and 0.0 < sum(rep["explained_variance"]) <= 1.0 + 1e-9
    _check_against_store(store, name, doc)
    if kind == "two":
        front = secs["pareto"]["front"]
        assert front and all("strength" in f["values"] for f in front)
    # self-contained: no script, no external resource
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert 'src="http' not in page and 'href="http' not in page
    assert page.count("data:image/png;base64,") >= 5


def test_an_empty_campaign_gives_a_helpful_page(store: Store) -> None:
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    doc, page = _report(store, "p3ht")
    assert doc["sections"]["summary"]["measurements"] == 0
    assert "No measurements yet" in page and "loop propose p3ht" in page
    assert "No model fit yet" in page and "No proposals yet" in page
    assert "representation" not in doc["sections"]
