"""The propose engine: initial design, model fits and their reuse, constraints, stop rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from db import crud, open_store
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.errors import BudgetError
from loop.ingest import ingest_rows
from loop.proposals import mark_proposal
from loop.simulators import make_simulator
from loop.spec import parse_spec

SPEC = """
name = "alloy"
budget = 40
batch_size = 3
initial_design = 4

[[parameters]]
type = "float"
name = "temperature"
low = 300
high = 900

[[parameters]]
type = "int"
name = "hours"
low = 1
high = 24

[[parameters]]
type = "composition"
name = "alloy"
elements = ["Fe", "Ni", "Co"]
min = { Fe = 0.2 }
max = { Ni = 0.6 }

[[objectives]]
name = "hardness"
direction = "minimize"

[[constraints]]
name = "cost"
upper = 3.0
{extra}
"""


def _truth(p: dict) -> dict:
    hard = (p["temperature"] - 600) ** 2 / 1e4 + 5 * (p["Fe"] - 0.5) ** 2 + 0.01 * p["hours"]
    return {"hardness": hard, "cost": 1 + 4 * p["Co"]}


@pytest.fixture
def alloy(tmp_path: Path):
    def make(extra: str = ""):
        spec = tmp_path / "alloy.toml"
        spec.write_text(SPEC.replace("{extra}", extra))
        store = open_store(f"sqlite:///{tmp_path / 'loop.db'}", artifact_dir=tmp_path / "art")
        with store.session_scope() as s:
            create_campaign(session=s, path=spec)
        return store

    return make


def _round(store, n=None):  # type: ignore[no-untyped-def]
    with store.session_scope() as s:
        res = propose(session=s, name="alloy", n=n, artifact_dir=store.artifact_dir)
    rows = [(i + 2, {"proposal_id": p.id, **_truth(p.params)}) for i, p in enumerate(res.proposals)]
    with store.session_scope() as s:
        ingest_rows(session=s, name="alloy", rows=rows, source="t")
    return res


def _check_feasible(params: dict) -> None:
    assert 300 <= params["temperature"] <= 900
    assert isinstance(params["hours"], int) and 1 <= params["hours"] <= 24
    assert params["Fe"] >= 0.2 - 1e-9 and params["Ni"] <= 0.6 + 1e-9
    assert math.isclose(params["Fe"] + params["Ni"] + params["Co"], 1.0, abs_tol=1e-6)


def test_sobol_then_gp_with_constraints_and_heldout_predictions(alloy) -> None:  # type: ignore[no-untyped-def]
    store = alloy()
    first = _round(store)
    second = _round(store)
    assert first.strategy == second.strategy == "sobol"
    third = _round(store)
    assert third.strategy == "gp+qucb"
    for r in (first, second, third):
        for p in r.proposals:
            _check_feasible(p.params)
    fit = third.model_fit
    assert fit is not None and fit.checkpoint_path and Path(fit.checkpoint_path).is_file()
    with store.session_scope() as s:
        ms = crud.list_measurements(session=s, campaign_id=1)
        props = crud.list_proposals(session=s, campaign_id=1)
    # held-out predictions for every point measured before the fit, in original units
    assert [h["measurement_id"] for h in fit.heldout] == [m.id for m in ms[:6]]
    assert set(fit.metrics) >= {"hardness", "cost", "n_train"}
    assert fit.metrics["cost"]["rmse"] < 0.5  # cost is linear in Co: the GP must learn it
    for p in props[-3:]:
        assert set(p.predictions) == {"hardness", "cost"}
        assert p.predictions["hardness"]["std"] >= 0 and p.acq_value is not None
        assert p.model_fit_id == fit.id


def test_same_data_reuses_the_fit_and_a_damaged_checkpoint_is_refitted(
    tmp_path: Path, p3ht_spec: Path
) -> None:
    store = _p3ht_with_data(tmp_path, p3ht_spec, 8)
    with store.session_scope() as s:
        a = propose(session=s, name="p3ht", n=1, artifact_dir=store.artifact_dir)
    with store.session_scope() as s:
        b = propose(session=s, name="p3ht", n=1, artifact_dir=store.artifact_dir)
    assert a.model_fit is not None and b.model_fit is not None
    assert b.fit_reused and b.model_fit.id == a.model_fit.id
    assert b.proposals[0].candidate_idx != a.proposals[0].candidate_idx  # a is pending now
    Path(a.model_fit.checkpoint_path).write_bytes(b"tampered")  # type: ignore[arg-type]
    with store.session_scope() as s:
        c = propose(session=s, name="p3ht", n=1, artifact_dir=store.artifact_dir)
    assert c.model_fit is not None and not c.fit_reused and c.model_fit.id != a.model_fit.id


def _p3ht_with_data(tmp_path: Path, p3ht_spec: Path, n: int):  # type: ignore[no-untyped-def]
    """A P3HT campaign with `n` oracle measurements of the first pool rows (historical data)."""
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}", artifact_dir=tmp_path / "art")
    with store.session_scope() as s:
        rec = create_campaign(session=s, path=p3ht_spec)
        cands = crud.list_candidates(session=s, campaign_id=rec.id)
    sim = make_simulator(parse_spec(rec.spec))
    rows = [
        (i + 2, {**c[2], **sim.measure(c[2], np.random.default_rng(0))})
        for i, c in enumerate(cands[:n])
    ]
    with store.session_scope() as s:
        ingest_rows(session=s, name="p3ht", rows=rows, source="t")
    return store


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path, p3ht_spec: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}", artifact_dir=tmp_path / "art")
    with store.session_scope() as s:
        rec = create_campaign(session=s, path=p3ht_spec)
    sim = make_simulator(parse_spec(rec.spec))
    rng = np.random.default_rng(0)
    for _ in range(5):
        with store.session_scope() as s:
            res = propose(
                session=s, name="p3ht", n=3, artifact_dir=store.artifact_dir, keep_checkpoints=2
            )
        rows = [
            (i + 2, {"proposal_id": p.id, **sim.measure(p.params, rng)})
            for i, p in enumerate(res.proposals)
        ]
        with store.session_scope() as s:
            ingest_rows(session=s, name="p3ht", rows=rows, source="t")
    with store.session_scope() as s:
        fits = crud.list_model_fits(session=s, campaign_id=rec.id)
    kept = [f for f in fits if f.checkpoint_path]
    assert len(fits) == 3 and [f.id for f in kept] == [f.id for f in fits[-2:]]
    assert all(Path(f.checkpoint_path).is_file() for f in kept)  # type: ignore[arg-type]
    assert len(list((store.artifact_dir / "p3ht").glob("*.pt"))) == 2
    assert all(f.heldout and f.metrics for f in fits)  # metadata stays after the file goes


def test_stop_target_and_budget_end_the_campaign(alloy) -> None:  # type: ignore[no-untyped-def]
    store = alloy("\n[stop]\ntarget = 0.5\n")
    for _ in range(6):
        try:
            _round(store)
        except BudgetError as err:
            assert "stop target" in str(err)
            break
    else:
        pytest.fail("the stop target 0.5 was never reached in 6 rounds")


def test_budget_caps_the_batch(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("budget = 40", "budget = 4").replace("{extra}", ""))
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}", artifact_dir=tmp_path / "art")
    with store.session_scope() as s:
        create_campaign(session=s, path=spec)
    with store.session_scope() as s:
        assert len(propose(session=s, name="alloy", n=3, artifact_dir=tmp_path).proposals) == 3
    with store.session_scope() as s:
        res = propose(session=s, name="alloy", n=3, artifact_dir=tmp_path)
        assert len(res.proposals) == 1 and "budget" in res.notes[0]
    with store.session_scope() as s, pytest.raises(BudgetError, match="spent its budget"):
        propose(session=s, name="alloy", artifact_dir=tmp_path)


def test_constant_results_fit_and_store_on_every_database(
    store,
    p3ht_spec: Path,  # type: ignore[no-untyped-def]
) -> None:
    """All-equal values make R^2 undefined; it is stored as null (PostgreSQL's json has no NaN)."""
    with store.session_scope() as s:
        rec = create_campaign(session=s, path=p3ht_spec)
        cands = crud.list_candidates(session=s, campaign_id=rec.id)
    rows = [(i + 2, {**c[2], "conductivity": 5.0}) for i, c in enumerate(cands[:7])]
    with store.session_scope() as s:
        ingest_rows(session=s, name="p3ht", rows=rows, source="t")
    with store.session_scope() as s:
        res = propose(session=s, name="p3ht", n=2, artifact_dir=store.artifact_dir)
    assert res.model_fit is not None
    with store.session_scope() as s:
        fit = crud.latest_model_fit(session=s, campaign_id=rec.id)
    assert fit is not None and fit.metrics["conductivity"]["r2"] is None


@pytest.mark.parametrize("acq", ["explore", "thompson"])
def test_explore_and_thompson_in_a_mixed_constrained_space(alloy, acq: str) -> None:  # type: ignore[no-untyped-def]
    store = alloy(f'[model]\nacquisition = "{acq}"\n')
    _round(store)
    _round(store)
    res = _round(store)
    assert res.strategy == f"gp+{acq}"
    xs = []
    for p in res.proposals:
        _check_feasible(p.params)
        xs.append((p.params["temperature"], p.params["Fe"], p.params["Ni"], p.params["hours"]))
    assert len(set(xs)) == len(xs)


LINEAR = """
[[linear_constraints]]
terms = { Ni = 1.0, Co = 1.0 }
upper = 0.5

[[linear_constraints]]
terms = { temperature = 1.0, Fe = 1000.0 }
lower = 900
upper = 1300
"""


def test_linear_constraints_hold_for_every_proposal(alloy) -> None:  # type: ignore[no-untyped-def]
    store = alloy(LINEAR)
    rounds = [_round(store) for _ in range(3)]
    assert rounds[0].strategy == "sobol" and rounds[2].strategy == "gp+qucb"
    for r in rounds:
        for p in r.proposals:
            _check_feasible(p.params)
            assert p.params["Ni"] + p.params["Co"] <= 0.5 + 1e-6
            assert 900 - 1e-3 <= p.params["temperature"] + 1000 * p.params["Fe"] <= 1300 + 1e-3


@pytest.mark.parametrize(
    "extra,message",
    [
        ("[[linear_constraints]]\nterms = { hours = 1.0 }\nupper = 3\n", "names 'hours'"),
        ("[[linear_constraints]]\nterms = { Fe = 1.0 }\n", "give lower, upper or both"),
        ("[[linear_constraints]]\nterms = { Fe = 1.0 }\nlower = 2\nupper = 1\n", "above upper"),
    ],
)
def test_linear_constraints_are_checked(extra: str, message: str) -> None:
    import tomllib

    from loop.errors import LoopError

    raw = tomllib.loads(SPEC.replace("{extra}", extra))
    with pytest.raises((LoopError, ValueError), match=message):
        parse_spec(raw, "alloy.toml")


def test_the_pool_encoding_is_cached_and_a_damaged_cache_rebuilt(
    tmp_path: Path, p3ht_spec: Path
) -> None:
    store = _p3ht_with_data(tmp_path, p3ht_spec, 8)
    with store.session_scope() as s:
        a = propose(session=s, name="p3ht", n=2, artifact_dir=store.artifact_dir, seed=1)
    (cache,) = (store.artifact_dir / "p3ht" / "pool").glob("*.pt")
    X = torch.load(cache, weights_only=True)
    assert X.shape == (178, 5)
    cache.write_bytes(b"not a tensor")
    with store.session_scope() as s:
        for p in a.proposals:
            mark_proposal(session=s, proposal_id=p.id, status="abandoned")
    with store.session_scope() as s:
        b = propose(session=s, name="p3ht", n=2, artifact_dir=store.artifact_dir, seed=1)
    # proposing works from the rebuilt encoding, and the file is whole again
    assert len({p.candidate_idx for p in b.proposals}) == 2
    assert torch.equal(torch.load(cache, weights_only=True), X)


def test_pool_encodings_of_two_stores_sharing_an_artifact_folder_stay_apart(
    tmp_path: Path,
) -> None:
    """The same pool in another order, under the same campaign name and id in another store:
    each store encodes its own order (the cache file names the campaign's creation time)."""
    from loop.engine import _encoded_pool
    from loop.spec import parse_spec as parse

    art = tmp_path / "shared-artifacts"
    values = [[0.1, 1.0], [0.5, 3.0], [0.9, 2.0], [0.3, 5.0]]
    for k, rows in enumerate((values, values[::-1])):
        folder = tmp_path / f"db{k}"
        folder.mkdir()
        (folder / "pool.csv").write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows))
        (folder / "spec.toml").write_text(
            'name = "c"\nbudget = 3\n[pool]\npath = "pool.csv"\ncolumns = ["a", "b"]\n'
            '[[objectives]]\nname = "y"\n'
        )
        store = open_store(f"sqlite:///{folder / 'loop.db'}", artifact_dir=art)
        with store.session_scope() as s:
            rec = create_campaign(session=s, path=folder / "spec.toml")
            X = _encoded_pool(s, rec.id, "c", parse(rec.spec), art)
        assert X.tolist() == rows
        store.dispose()
