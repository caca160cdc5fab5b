"""Campaign bundles: export from SQLite, import into SQLite or PostgreSQL, and compare."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from db import Store, crud, open_store
from loop.bundle import BUNDLE_FORMAT, export_bundle, import_bundle
from loop.campaigns import create_campaign, update_campaign
from loop.engine import propose
from loop.errors import ConflictError, LoopError
from loop.ingest import ingest_rows
from loop.proposals import mark_proposal

ROOT = Path(__file__).resolve().parents[2]
#: Statuses of the source campaign's proposals, in id order.
STATUSES = ["completed", "completed", "failed", "proposed", "abandoned"]


def _ingest_rows(ids: list[int]) -> list[tuple[int, dict[str, Any]]]:
    """Results for the first two proposals and one historical row (by parameters)."""
    return [
        (
            2,
            {
                "proposal_id": ids[0],
                "conductivity": "10.5",
                "conductivity_std": "0.5",
                "operator": "ann",
                "measured_at": "2026-05-01T14:30:00",
            },
        ),
        (3, {"proposal_id": ids[1], "conductivity": "3.25"}),
        (
            4,
            {
                "measurement_id": "hist-1",
                "p3ht": "55",
                "d1": "0",
                "d2": "0",
                "d6": "0",
                "d8": "45",
                "conductivity": "7.75",
                "source": "literature",
            },
        ),
    ]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A P3HT campaign built through the real functions, exported from SQLite once per module.

    Proposal statuses: two completed, one failed, one proposed (model-based), one abandoned.
    """
    tmp = tmp_path_factory.mktemp("bundle-source")
    store = open_store(f"sqlite:///{tmp / 'source.db'}", artifact_dir=tmp / "art")
    try:
        with store.session_scope() as session:
            create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
            update_campaign(session=session, name="p3ht", changes={"initial_design": 2})
        with store.session_scope() as session:
            first = propose(session=session, name="p3ht", n=3, artifact_dir=tmp / "art")
        ids = [p.id for p in first.proposals]
        with store.session_scope() as session:
            res = ingest_rows(
                session=session, name="p3ht", rows=_ingest_rows(ids), source="results.csv"
            )
            assert res.stored == 3
            mark_proposal(
                session=session, proposal_id=ids[2], status="failed", reason="film peeled off"
            )
        with store.session_scope() as session:
            second = propose(session=session, name="p3ht", n=2, artifact_dir=tmp / "art")
        assert second.model_fit is not None
        with store.session_scope() as session:
            mark_proposal(
                session=session,
                proposal_id=second.proposals[1].id,
                status="abandoned",
                reason="no time",
            )
        with store.session_scope() as session:
            bundle = export_bundle(session=session, name="p3ht")
        yield json.loads(json.dumps(bundle))
    finally:
        store.dispose()


@pytest.fixture
def target(db_url: str, tmp_path: Path) -> Iterator[Store]:
    """The store a bundle is imported into (SQLite, and PostgreSQL when it answers)."""
    s = open_store(db_url, artifact_dir=tmp_path / "target-art")
    yield s
    s.dispose()


def _import(store: Store, bundle: dict[str, Any], name: str | None = None) -> str:
    with store.session_scope() as session:
        return import_bundle(
            session=session, bundle=copy.deepcopy(bundle), name=name, source="b.json"
        )


def _export(store: Store, name: str) -> dict[str, Any]:
    with store.session_scope() as session:
        return json.loads(json.dumps(export_bundle(session=session, name=name)))


def _snapshot(store: Store) -> dict[str, Any]:
    """Everything the store holds, as comparable data."""
    out: dict[str, Any] = {}
    with store.session_scope() as session:
        for c in crud.list_campaigns(session=session):
            out[c.name] = (
                c.spec_version,
                [(p.id, p.status) for p in crud.list_proposals(session=session, campaign_id=c.id)],
                [
                    m.idempotency_key
                    for m in crud.list_measurements(session=session, campaign_id=c.id)
                ],
                [e.kind for e in crud.list_events(session=session, campaign_id=c.id)],
                len(crud.list_model_fits(session=session, campaign_id=c.id)),
                crud.count_candidates(session=session, campaign_id=c.id),
            )
    return out


def _normalize(b: dict[str, Any], *, times: bool) -> dict[str, Any]:
    """A bundle with store ids replaced by positions (and timestamps dropped unless `times`)."""
    fit_pos = {f["id"]: i for i, f in enumerate(b["model_fits"])}
    prop_pos = {p["id"]: i for i, p in enumerate(b["proposals"])}

    def key(k: str) -> str:
        if k.startswith("proposal:"):
            return f"proposal:#{prop_pos[int(k.split(':')[1])]}"
        return k

    def t(v: str | None) -> str | None:
        return v if times else None

    return {
        "campaign": {**b["campaign"], "created_at": t(b["campaign"]["created_at"])},
        "spec_history": [(h["version"], h["note"], h["spec"]) for h in b["spec_history"]],
        "candidates": b["candidates"],
        "model_fits": [
            {**f, "id": None, "created_at": t(f["created_at"])} for f in b["model_fits"]
        ],
        "proposals": [
            {
                **p,
                "id": None,
                "updated_at": None,
                "created_at": t(p["created_at"]),
                "model_fit_id": fit_pos.get(p["model_fit_id"]),
            }
            for p in b["proposals"]
        ],
        "measurements": [
            {
                **m,
                "id": None,
                "proposal_id": prop_pos.get(m["proposal_id"]),
                "idempotency_key": key(m["idempotency_key"]),
                "created_at": t(m["created_at"]),
                "measured_at": t(m["measured_at"]),
            }
            for m in b["measurements"]
        ],
        "events": [{**e, "created_at": t(e["created_at"])} for e in b["events"]],
    }


def test_source_campaign_covers_every_part(source: dict[str, Any]) -> None:
    assert source["format"] == BUNDLE_FORMAT
    assert [p["status"] for p in source["proposals"]] == STATUSES
    assert [p["strategy"] for p in source["proposals"]][-2:] == ["gp+qlognei"] * 2
    assert len(source["model_fits"]) == 1
    assert len(source["measurements"]) == 3
    assert len(source["candidates"]) > 100
    assert [h["version"] for h in source["spec_history"]] == [1, 2]


def test_import_reproduces_the_campaign(source: dict[str, Any], target: Store, db_url: str) -> None:
    assert _import(target, source) == "p3ht"
    got = _export(target, "p3ht")
    assert got["format"] == BUNDLE_FORMAT
    # the import adds one event; the rest is the same campaign under new ids
    assert [e["kind"] for e in got["events"]] == [e["kind"] for e in source["events"]] + [
        "imported"
    ]
    assert got["events"][-1]["payload"] == {"source": "b.json", "from_name": "p3ht"}
    got["events"] = got["events"][:-1]
    # SQLite hands back the times it was given; on PostgreSQL they pass a time zone
    times = db_url.startswith("sqlite")
    expected = _normalize(source, times=times)
    actual = _normalize(got, times=times)
    for part in (
        "campaign",
        "spec_history",
        "candidates",
        "model_fits",
        "proposals",
        "measurements",
        "events",
    ):
        assert actual[part] == expected[part], part


def test_imported_records(source: dict[str, Any], target: Store) -> None:
    _import(target, source, name="first")  # so that the ids of the second import differ
    _import(target, source)
    with target.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        assert rec.spec_version == 2 and rec.spec["initial_design"] == 2
        hist = crud.spec_history(session=session, campaign_id=rec.id)
        assert [(h["version"], h["note"]) for h in hist] == [
            (1, "created"),
            (2, "initial_design=2"),
        ]
        props = crud.list_proposals(session=session, campaign_id=rec.id)
        assert [p.status for p in props] == STATUSES
        assert props[2].reason == "film peeled off" and props[4].reason == "no time"
        (fit,) = crud.list_model_fits(session=session, campaign_id=rec.id)
        assert fit.checkpoint_path is None  # checkpoints do not travel
        assert fit.checkpoint_sha256 == source["model_fits"][0]["checkpoint_sha256"]
        assert [p.model_fit_id for p in props] == [None, None, None, fit.id, fit.id]
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
        assert [m.values for m in ms] == [{"conductivity": v} for v in (10.5, 3.25, 7.75)]
        assert ms[0].stds == {"conductivity": 0.5}
        assert ms[0].provenance["operator"] == "ann"
        assert [m.proposal_id for m in ms] == [props[0].id, props[1].id, None]
        assert [m.idempotency_key for m in ms] == [
            f"proposal:{props[0].id}",
            f"proposal:{props[1].id}",
            "id:hist-1",
        ]
        assert [m.source for m in ms] == ["experiment", "experiment", "literature"]


def test_reingesting_results_into_the_import_stores_nothing(
    source: dict[str, Any], target: Store
) -> None:
    _import(target, source, name="first")  # so that the ids of the second import differ
    _import(target, source)
    with target.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        ids = [p.id for p in crud.list_proposals(session=session, campaign_id=rec.id)]
        before = crud.count_measurements(session=session, campaign_id=rec.id)
    assert ids[0] != source["proposals"][0]["id"]
    with target.session_scope() as session:
        res = ingest_rows(session=session, name="p3ht", rows=_ingest_rows(ids), source="again")
    assert (res.stored, res.already) == (0, 3)
    with target.session_scope() as session:
        assert crud.count_measurements(session=session, campaign_id=rec.id) == before == 3
        statuses = [p.status for p in crud.list_proposals(session=session, campaign_id=rec.id)]
    assert statuses == STATUSES


def test_import_twice_under_one_name_conflicts(source: dict[str, Any], target: Store) -> None:
    _import(target, source)
    before = _snapshot(target)
    with pytest.raises(ConflictError, match="'p3ht' already exists"):
        _import(target, source)
    assert _snapshot(target) == before


def test_import_under_a_new_name(source: dict[str, Any], target: Store) -> None:
    _import(target, source)
    assert _import(target, source, name="p3ht-copy") == "p3ht-copy"
    with target.session_scope() as session:
        names = [c.name for c in crud.list_campaigns(session=session)]
        copy_rec = crud.get_campaign(session=session, name="p3ht-copy")
        hist = crud.spec_history(session=session, campaign_id=copy_rec.id)
        events = crud.list_events(session=session, campaign_id=copy_rec.id)
        props = crud.list_proposals(session=session, campaign_id=copy_rec.id)
    assert names == ["p3ht", "p3ht-copy"]
    assert copy_rec.spec["name"] == "p3ht-copy"
    assert [h["spec"]["name"] for h in hist] == ["p3ht-copy", "p3ht-copy"]
    assert events[-1].payload == {"source": "b.json", "from_name": "p3ht"}
    assert [p.status for p in props] == STATUSES
    snap = _snapshot(target)
    assert snap["p3ht"][3:] == snap["p3ht-copy"][3:]  # same events, fits and pool
    assert len(snap["p3ht"][2]) == len(snap["p3ht-copy"][2]) == 3


def test_sqlite_bundle_of_an_import_imports_again(
    source: dict[str, Any], target: Store, tmp_path: Path
) -> None:
    """Export the imported campaign again (from either database) and import it into SQLite."""
    _import(target, source)
    again = _export(target, "p3ht")
    third = open_store(f"sqlite:///{tmp_path / 'third.db'}", artifact_dir=tmp_path / "a3")
    try:
        _import(third, again)
        got = _export(third, "p3ht")
    finally:
        third.dispose()
    assert [e["kind"] for e in got["events"]][-2:] == ["imported", "imported"]
    assert (
        _normalize(got, times=False)["measurements"]
        == _normalize(source, times=False)["measurements"]
    )
    assert [p["status"] for p in got["proposals"]] == STATUSES


def _drop(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def damage(b: dict[str, Any]) -> None:
        obj: Any = b
        for p in path[:-1]:
            obj = obj[p]
        del obj[path[-1]]

    return damage


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def damage(b: dict[str, Any]) -> None:
        obj: Any = b
        for p in path[:-1]:
            obj = obj[p]
        obj[path[-1]] = value

    return damage


DAMAGES = {
    "no measurements": _drop("measurements"),
    "no events": _drop("events"),
    "proposal without status": _drop("proposals", 3, "status"),
    "measurement without values": _drop("measurements", 1, "values"),
    "fit without kind": _drop("model_fits", 0, "kind"),
    "event without payload": _drop("events", 0, "payload"),
    "campaign without name": _drop("campaign", "name"),
    "bad proposal key": _set("proposal:x", "measurements", 0, "idempotency_key"),
    "bad time": _set("yesterday", "proposals", 0, "created_at"),
    "candidates not a list": _set(7, "candidates"),
    "no spec history": _set([], "spec_history"),
    "wrong format": _set("something-else/1", "format"),
}


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_damaged_bundle_changes_nothing(
    source: dict[str, Any], sqlite_url: str, tmp_path: Path, damage: str
) -> None:
    store = open_store(sqlite_url, artifact_dir=tmp_path / "art")
    try:
        bad = copy.deepcopy(source)
        DAMAGES[damage](bad)
        with pytest.raises(LoopError) as err:
            _import(store, bad)
        assert not isinstance(err.value, ConflictError)
        assert "b.json" in err.value.message
        assert _snapshot(store) == {}
    finally:
        store.dispose()


def test_damaged_bundle_on_the_target_database(source: dict[str, Any], target: Store) -> None:
    _import(target, source, name="kept")
    before = _snapshot(target)
    bad = copy.deepcopy(source)
    del bad["measurements"][2]["idempotency_key"]  # fails after most rows are written
    with pytest.raises(LoopError, match="incomplete or damaged"):
        _import(target, bad)
    assert _snapshot(target) == before
    assert list(before) == ["kept"]
