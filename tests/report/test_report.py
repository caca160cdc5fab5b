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


def _campaign(
    store: Store,
    tmp_path: Path,
    kind: str,
    rounds: int = 3,
    costs: str | None = None,
    source: Callable[[int], str] | None = None,
    pending: int = 1,
) -> str:
    """The campaign after `rounds` batches of 4: the initial design, then model-based ones.

    Args:
        costs: A `[costs]` table appended to the spec.
        source: The source of the `i`-th result of a batch; the ingest default when None.
        pending: Proposals of the last batch left unmeasured.
    """
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
    if costs is not None:
        text = path.read_text(encoding="utf-8") + "\n" + costs
        path = tmp_path / f"{kind}-costs.toml"
        path.write_text(text, encoding="utf-8")
    with store.session_scope() as session:
        rec = create_campaign(session=session, path=path)
    if fn is None:
        fn = _p3ht(store)
    for r in range(rounds):
        with store.session_scope() as session:
            res = propose(session=session, name=rec.name, n=4, artifact_dir=store.artifact_dir)
        rows = [
            (
                i + 1,
                {"proposal_id": p.id, **fn(p.params), **({"source": source(i)} if source else {})},
            )
            for i, p in enumerate(res.proposals)
        ]
        if r == rounds - 1 and pending:
            rows = rows[:-pending]
        with store.session_scope() as session:
            ingest_rows(session=session, name=rec.name, rows=rows)
    return rec.name


def _report(store: Store, name: str) -> tuple[dict[str, Any], str]:
    with store.session_scope() as session:
        ctx = load_context(session=session, name=name, artifact_dir=store.artifact_dir)
    return build_report(ctx)


def _check_against_store(store: Store, name: str, doc: dict[str, Any], page: str) -> None:
    """The report's numbers, recomputed here from what the data access functions return."""
    from scipy.stats import norm

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
    # per batch: proposals, results that came back, failures and open ones
    first = rec.spec["objectives"][0]["name"]
    batch_of = {p.id: p.batch for p in props}
    expected = {
        b: {
            "proposed": sum(p.batch == b for p in props),
            "measured": sum(batch_of.get(m.proposal_id) == b and first in m.values for m in ms),
            "failed": sum(p.batch == b and p.status == "failed" for p in props),
            "open": sum(p.batch == b and p.status in ("proposed", "running") for p in props),
        }
        for b in sorted(set(batch_of.values()))
    }
    got = {
        r["batch"]: {k: r[k] for k in ("proposed", "measured", "failed", "open")}
        for r in secs["progress"]["batches"]
    }
    assert got == expected
    # the fixtures leave one proposal of the last batch unmeasured
    by_prop = {m.proposal_id: m for m in ms}
    pending = [p for p in props if p.id not in by_prop]
    assert len(pending) == 1 and pending[0].status == "proposed"
    assert expected[pending[0].batch]["open"] == 1
    decided = {r["proposal"]: r for r in secs["decisions"]["proposals"]}
    assert set(decided) == {p.id for p in props}
    for p in props:
        r = decided[p.id]
        assert r["model_fit"] == p.model_fit_id and r["acq_value"] == p.acq_value
        assert r["status"] == p.status
        if p.id in by_prop:
            assert r["measured"] == {k: by_prop[p.id].values[k] for k in r["measured"]}
        else:
            assert r["measured"] is None and r["z"] == {}
    # diagnostics: RMSE, 90% coverage and miscalibration area of each fit's held-out predictions
    with_heldout = [f for f in fits if f.heldout]
    assert with_heldout, "the fixture never reached a model-based batch"
    assert [r["fit"] for r in secs["diagnostics"]["fits"]] == [f.id for f in with_heldout]
    by_id = {m.id: m for m in ms}
    levels = (np.arange(100) + 0.5) / 100
    z90 = 1.6448536269514722
    outcomes = [o["name"] for o in rec.spec["objectives"]]
    outcomes += [c["name"] for c in rec.spec.get("constraints", [])]
    for fit, row in zip(with_heldout, secs["diagnostics"]["fits"]):
        assert set(row["outcomes"]) == set(outcomes)
        for o in outcomes:
            y = np.array([by_id[h["measurement_id"]].values[o] for h in fit.heldout])
            mu = np.array([h["mean"][o] for h in fit.heldout])
            sd = np.array([h["std"][o] for h in fit.heldout])
            score = np.abs(y - mu) / sd
            observed = (score[None, :] <= norm.ppf(0.5 + levels / 2)[:, None]).mean(axis=1)
            shown = row["outcomes"][o]
            assert shown["n"] == len(fit.heldout) >= 2
            assert shown["rmse"] == pytest.approx(float(np.sqrt(np.mean((y - mu) ** 2))))
            assert shown["coverage90"] == pytest.approx(float(np.mean(score <= z90)))
            assert shown["miscalibration_area"] == pytest.approx(
                float(np.mean(np.abs(observed - levels)))
            )
            # the HTML table shows the same numbers
            for v in (shown["rmse"], shown["coverage90"], shown["miscalibration_area"]):
                assert f"<td>{v:.4g}</td>" in page


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
    _check_against_store(store, name, doc, page)
    if kind == "two":
        front = secs["pareto"]["front"]
        assert front and all("strength" in f["values"] for f in front)
    # self-contained: no script, no external resource
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert 'src="http' not in page and 'href="http' not in page
    assert page.count("data:image/png;base64,") >= 5
    assert secs["progress"]["sources"] == {"experiment": secs["summary"]["measurements"]}
    assert "one source, &#x27;experiment&#x27;: one fidelity" in page


def test_an_empty_campaign_gives_a_helpful_page(store: Store) -> None:
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    doc, page = _report(store, "p3ht")
    assert doc["sections"]["summary"]["measurements"] == 0
    assert "No measurements yet" in page and "loop propose p3ht" in page
    assert "No model fit yet" in page and "No proposals yet" in page
    assert "representation" not in doc["sections"]


# -- progress against cost -----------------------------------------------------------------------


def _half_simulated(i: int) -> str:
    return "simulation" if i % 2 else "experiment"


def test_progress_against_cost_when_every_source_has_a_cost(store: Store, tmp_path: Path) -> None:
    from loop.campaigns import update_campaign

    costs = "[costs]\nexperiment = 1.0\nsimulation = 0.25\n"
    name = _campaign(store, tmp_path, "parameters", 2, costs, _half_simulated)
    with store.session_scope() as session:  # a later spec version keeps the costs
        update_campaign(session=session, name=name, changes={"budget": 44})
        rec = crud.get_campaign(session=session, name=name)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
    assert rec.spec_version == 2
    doc, page = _report(store, name)
    prog = doc["sections"]["progress"]
    price = {"experiment": 1.0, "simulation": 0.25}
    assert prog["costs"] == price
    assert (
        prog["sources"]
        == {"experiment": 4, "simulation": 3}
        == {s: sum(m.source == s for m in ms) for s in price}
    )
    cost = prog["cost"]
    assert cost["total"] == pytest.approx(sum(price[m.source] for m in ms)) == 4.75
    assert cost["by_source"]["simulation"] == {"results": 3, "cost_each": 0.25, "cost": 0.75}
    cum = cost["cumulative"]["hardness"]
    assert cum == pytest.approx(np.cumsum([price[m.source] for m in ms]).tolist())
    assert len(cum) == len(prog["best_so_far"]["hardness"])
    assert 'alt="best so far against cumulative cost"' in page
    assert "one fidelity" not in page and "declares no cost" not in page


@pytest.mark.parametrize(
    "costs,says",
    [
        (None, "but the spec declares no cost per source"),
        ("[costs]\nexperiment = 1.0\n", "[costs] declares experiment but not 'simulation'"),
    ],
)
def test_mixed_sources_without_every_cost_say_so(
    store: Store, tmp_path: Path, costs: str | None, says: str
) -> None:
    name = _campaign(store, tmp_path, "parameters", 1, costs, _half_simulated)
    doc, page = _report(store, name)
    prog = doc["sections"]["progress"]
    assert prog["sources"] == {"experiment": 2, "simulation": 1} and prog["cost"] is None
    text = " ".join(page.split())
    assert "Results come from 2 sources (&#x27;experiment&#x27; (2 results)" in text
    assert says.replace("'", "&#x27;") in text and "[costs] with" in text
    assert "one fidelity" not in page and "against cumulative cost" not in page


def test_one_source_is_one_fidelity(store: Store, tmp_path: Path) -> None:
    name = _campaign(store, tmp_path, "parameters", 1, "[costs]\nexperiment = 2.0\n")
    doc, page = _report(store, name)
    prog = doc["sections"]["progress"]
    assert prog["sources"] == {"experiment": 3} and prog["cost"]["total"] == 6.0
    assert "from one source, &#x27;experiment&#x27; at a declared cost of 2 each: one " in page
    assert "against cumulative cost" not in page


# -- latent-space campaigns ----------------------------------------------------------------------

LATENT = """\
name = "latent_k"
budget = 12
batch_size = 4
initial_design = 4
[latent]
gan = "tiny"
size = 2
[[objectives]]
name = "k_xx"
direction = "maximize"
[[objectives]]
name = "volume_fraction"
direction = "minimize"
[model]
surrogate = "gp"
[simulator]
name = "homogenization"
options = { phases = [{ conductivity = 1.0 }, { conductivity = 10.0 }] }
"""


def test_latent_campaign_tables_hide_packed_images(tmp_path: Path) -> None:
    """The decoded image (`HxW:base64`, hundreds of characters) stays out of the Summary and
    Pareto tables, and the microstructure caption says the GAN decoded the images."""
    from typer.testing import CliRunner

    from loop.cli import app
    from loop.display import is_packed_image
    from loop.simulators import make_simulator
    from loop.spec import parse_spec

    db = tmp_path / "l.db"
    args = ["--name", "tiny", "--n", "32", "--latent", "2", "--filters", "8,8,4,4", "--steps", "5"]
    res = CliRunner().invoke(app, ["--db", str(db), "surrogate", "train-gan", *args])
    assert res.exit_code == 0, res.output
    (tmp_path / "lat.toml").write_text(LATENT)
    s = open_store(f"sqlite:///{db}", artifact_dir=tmp_path / "artifacts")
    try:
        with s.session_scope() as session:
            create_campaign(session=session, path=tmp_path / "lat.toml")
            spec = parse_spec(crud.get_campaign(session=session, name="latent_k").spec)
        sim = make_simulator(spec)
        rng = np.random.default_rng(0)
        with s.session_scope() as session:
            got = propose(session=session, name="latent_k", n=4, artifact_dir=s.artifact_dir)
        rows = [
            (i + 1, {"proposal_id": p.id, **sim.measure(p.params, rng)})
            for i, p in enumerate(got.proposals)
        ]
        with s.session_scope() as session:
            ingest_rows(session=session, name="latent_k", rows=rows)
        doc, page = _report(s, "latent_k")
    finally:
        s.dispose()
    secs = doc["sections"]
    best = secs["summary"]["best"]["k_xx"]["params"]
    packed = best["image"]
    assert is_packed_image(packed) and len(packed) > 40  # the JSON carries it whole
    assert packed not in page and packed[:30] not in page
    assert "z00=" in page  # the latent values are still shown
    assert secs["pareto"]["front"] and secs["microstructures"]["source"] == "decoded by the GAN"
    assert "the GAN &#x27;tiny&#x27; decoded" in page and "random seed 0" not in page
