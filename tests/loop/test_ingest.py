"""Ingest at the library level: validation, all-or-nothing storage, idempotency, replicates.

Runs on SQLite and, where a server answers, on PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from db import MeasurementRecord, ProposalRecord, Store, crud, open_store
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.errors import IngestError
from loop.ingest import IngestResult, ingest, ingest_rows, read_rows

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION = ROOT / "examples" / "composition.toml"
P3HT = ROOT / "examples" / "p3ht.toml"

HEADER = "temperature,hold_time,atmosphere,Fe,Ni,Co,hardness"
GOOD = ["500,4,argon,0.5,0.3,0.2,210.5", "650,12,air,0.4,0.4,0.2,230"]


@pytest.fixture
def sqlite_store(sqlite_url: str, tmp_path: Path) -> Iterator[Store]:
    """For pure validation tests: what is refused does not depend on the database."""
    s = open_store(sqlite_url, artifact_dir=tmp_path / "artifacts")
    yield s
    s.dispose()


# -- helpers ------------------------------------------------------------------------------------


def _create(store: Store, path: Path = COMPOSITION) -> str:
    with store.session_scope() as session:
        return create_campaign(session=session, path=path).name


def _ingest_text(
    store: Store, name: str, text: str, source: str = "results.csv", **kw: Any
) -> IngestResult:
    with store.session_scope() as session:
        return ingest_rows(
            session=session, name=name, rows=read_rows(text, source), source=source, **kw
        )


def _csv(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def _fails(store: Store, name: str, text: str, source: str = "results.csv") -> IngestError:
    with pytest.raises(IngestError) as info:
        _ingest_text(store, name, text, source)
    assert "nothing was stored" in info.value.message
    assert _measurements(store, name) == []
    return info.value


def _measurements(store: Store, name: str) -> list[MeasurementRecord]:
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        return crud.list_measurements(session=session, campaign_id=rec.id)


def _proposals(store: Store, name: str) -> list[ProposalRecord]:
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        return crud.list_proposals(session=session, campaign_id=rec.id)


def _propose(store: Store, name: str, n: int) -> list[ProposalRecord]:
    with store.session_scope() as session:
        return propose(
            session=session, name=name, n=n, seed=1, artifact_dir=store.artifact_dir
        ).proposals


def _ingest_dicts(
    store: Store, name: str, rows: list[dict[str, Any]], source: str = "results.jsonl"
) -> IngestResult:
    with store.session_scope() as session:
        return ingest_rows(
            session=session, name=name, source=source, rows=[(i + 1, r) for i, r in enumerate(rows)]
        )


# -- rows that give the parameters --------------------------------------------------------------


def test_parameter_rows_are_validated_coerced_and_stored(store: Store) -> None:
    name = _create(store)
    res = _ingest_text(store, name, _csv(*GOOD))
    assert (res.rows, res.stored, res.already) == (2, 2, 0)
    ms = _measurements(store, name)
    assert [m.id for m in ms] == res.measurement_ids
    m = ms[0]
    assert m.params == {
        "temperature": 500.0,
        "hold_time": 4,
        "atmosphere": "argon",
        "Fe": 0.5,
        "Ni": 0.3,
        "Co": 0.2,
    }
    assert isinstance(m.params["hold_time"], int)
    assert m.values == {"hardness": 210.5}
    assert m.proposal_id is None and m.candidate_idx is None
    assert m.source == "experiment"
    assert m.provenance["file"] == "results.csv" and m.provenance["line"] == 2
    assert ms[1].provenance["line"] == 3


def test_one_bad_row_stores_nothing_and_every_bad_row_is_named(store: Store) -> None:
    name = _create(store)
    text = _csv(GOOD[0], "1000,4,argon,0.5,0.3,0.2,200", GOOD[1], "500,2.5,argon,0.5,0.3,0.2,1")
    err = _fails(store, name, text)
    assert len(err.problems) == 2
    assert err.problems[0].startswith("results.csv, line 3, column 'temperature'")
    assert "1000 is outside the bounds [300, 900]" in err.problems[0]
    assert err.problems[1].startswith("results.csv, line 5, column 'hold_time'")
    assert "not an integer" in err.problems[1]
    assert "2 problem(s)" in err.message
    assert "ingest the whole file again" in err.hint
    # the message a user sees lists the rows too
    assert "line 3" in str(err) and "line 5" in str(err)


@pytest.mark.parametrize(
    "row,column,fragment",
    [
        ("hot,4,argon,0.5,0.3,0.2,1", "temperature", "not a number ('hot')"),
        ("500,0,argon,0.5,0.3,0.2,1", "hold_time", "outside the bounds [1, 24]"),
        ("500,4,vacuum,0.5,0.3,0.2,1", "atmosphere", "'vacuum' is not one of"),
        ("500,4,argon,0.1,0.6,0.3,1", "Fe", "0.1 is outside [0.2, 1]"),
        ("500,4,argon,0.2,0.2,0.6,1", "Co", "0.6 is outside [0, 0.5]"),
        ("500,4,argon,0.5,0.3,0.1,1", "Fe+Ni+Co", "fractions sum to 0.9"),
        ("500,4,argon,0.5,0.3,0.2,nan", "hardness", "'nan' is not a finite number"),
        ("500,4,argon,0.5,0.3,0.2,inf", "hardness", "'inf' is not a finite number"),
        ("500,4,argon,0.5,0.3,0.2,soft", "hardness", "'soft' is not a finite number"),
        ("500,4,argon,0.5,0.3,0.2,", "hardness", "missing value"),
    ],
)
def test_bad_values_name_line_and_column(
    sqlite_store: Store, row: str, column: str, fragment: str
) -> None:
    name = _create(sqlite_store)
    err = _fails(sqlite_store, name, _csv(GOOD[0], row))
    assert len(err.problems) == 1
    assert err.problems[0].startswith(f"results.csv, line 3, column '{column}'")
    assert fragment in err.problems[0]


@pytest.mark.parametrize(
    "extra,value,fragment",
    [
        ("hardness_std", "-1", "must be a number >= 0"),
        ("replicate", "maybe", "is not true/false"),
        ("measured_at", "yesterday", "is not an ISO 8601 time"),
        ("proposal_id", "abc", "is not a proposal id"),
        ("proposal_id", "999", "proposal 999 does not belong to campaign 'alloy_anneal'"),
    ],
)
def test_bad_bookkeeping_columns(
    sqlite_store: Store, extra: str, value: str, fragment: str
) -> None:
    name = _create(sqlite_store)
    err = _fails(sqlite_store, name, _csv(GOOD[0] + f",{value}", header=f"{HEADER},{extra}"))
    assert err.problems[0].startswith(f"results.csv, line 2, column '{extra}'")
    assert fragment in err.problems[0]


def test_nan_in_jsonl_is_refused(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    text = (
        '{"temperature": 500, "hold_time": 4, "atmosphere": "air", "Fe": 0.5, "Ni": 0.3, '
        '"Co": 0.2, "hardness": NaN}\n'
    )
    err = _fails(sqlite_store, name, text, source="r.jsonl")
    assert err.problems == [
        f"r.jsonl, line 1, column 'hardness': {float('nan')!r} is not a finite number"
    ]


def test_unknown_column_is_named_with_the_known_ones(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    err = _fails(sqlite_store, name, _csv(*[g + ",x" for g in GOOD], header=HEADER + ",hardnes"))
    assert len(err.problems) == 1, "one problem per unknown column, not per row"
    p = err.problems[0]
    assert p.startswith("results.csv, line 2, column 'hardnes': unknown column")
    assert "temperature, hold_time, atmosphere, Fe, Ni, Co, hardness" in p
    assert "rename or remove it" in p


def test_missing_parameter_column(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    err = _fails(
        sqlite_store,
        name,
        _csv("500,4,0.5,0.3,0.2,1", header="temperature,hold_time,Fe,Ni,Co,hardness"),
    )
    assert "line 2, missing parameter column(s) ['atmosphere']" in err.problems[0]
    assert "proposal_id" in err.problems[0]


def test_missing_outcome_column(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    err = _fails(
        sqlite_store,
        name,
        _csv("500,4,argon,0.5,0.3,0.2", header="temperature,hold_time,atmosphere,Fe,Ni,Co"),
    )
    assert "column 'hardness': missing value" in err.problems[0]


def test_no_rows(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    with pytest.raises(IngestError, match="no data rows"):
        _ingest_text(sqlite_store, name, HEADER + "\n")


# -- idempotency and replicates -----------------------------------------------------------------


def test_same_file_twice_stores_each_measurement_once(store: Store) -> None:
    name = _create(store)
    text = _csv(*GOOD)
    first = _ingest_text(store, name, text)
    second = _ingest_text(store, name, text)
    assert (first.stored, first.already) == (2, 0)
    assert (second.rows, second.stored, second.already) == (2, 0, 2)
    assert second.measurement_ids == []
    assert len(_measurements(store, name)) == 2
    # a file with one more row stores just that row
    third = _ingest_text(store, name, _csv(*GOOD, "700,6,nitrogen,0.6,0.2,0.2,199"))
    assert (third.stored, third.already) == (1, 2)
    assert len(_measurements(store, name)) == 3


def test_replicates_without_ids_are_all_kept(store: Store) -> None:
    name = _create(store)
    same_inputs = "500,4,argon,0.5,0.3,0.2"
    text = _csv(
        f"{same_inputs},200", f"{same_inputs},210", f"{same_inputs},205", f"{same_inputs},205"
    )
    res = _ingest_text(store, name, text)
    assert res.stored == 4, "identical rows are replicates too"
    values = sorted(m.values["hardness"] for m in _measurements(store, name))
    assert values == [200, 205, 205, 210]
    again = _ingest_text(store, name, text)
    assert (again.stored, again.already) == (0, 4)


def test_measurement_id_is_the_idempotency_key(store: Store) -> None:
    name = _create(store)
    header = HEADER + ",measurement_id"
    res = _ingest_text(store, name, _csv(GOOD[0] + ",m-1", GOOD[0] + ",m-2", header=header))
    assert res.stored == 2, "distinct ids with the same content are distinct measurements"
    again = _ingest_text(store, name, _csv(GOOD[0] + ",m-1", header=header), source="other.csv")
    assert (again.stored, again.already) == (0, 1)
    err = _fails_after(store, name, _csv("500,4,argon,0.5,0.3,0.2,999,m-1", header=header))
    assert "measurement_id 'm-1' is already stored" in err.problems[0]
    assert "its own measurement_id" in err.problems[0]
    assert len(_measurements(store, name)) == 2


def test_same_measurement_id_twice_in_one_file_with_other_values(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    header = HEADER + ",measurement_id"
    rows = ["500,4,argon,0.5,0.3,0.2,1,m", "500,4,argon,0.5,0.3,0.2,2,m"]
    err = _fails(sqlite_store, name, _csv(*rows, header=header))
    assert err.problems[0].startswith("results.csv, line 3: same id as line 2")


def _fails_after(store: Store, name: str, text: str) -> IngestError:
    before = len(_measurements(store, name))
    with pytest.raises(IngestError) as info:
        _ingest_text(store, name, text)
    assert len(_measurements(store, name)) == before
    return info.value


# -- rows that refer to proposals ---------------------------------------------------------------


def test_proposal_rows_complete_the_proposals(store: Store) -> None:
    name = _create(store)
    props = _propose(store, name, 3)
    assert {p.status for p in props} == {"proposed"}
    res = _ingest_dicts(
        store,
        name,
        [
            {"proposal_id": props[0].id, "hardness": 200.0},
            {"proposal_id": str(props[1].id), "hardness": "201.5"},
        ],
    )
    assert res.stored == 2
    status = {p.id: p.status for p in _proposals(store, name)}
    assert status == {props[0].id: "completed", props[1].id: "completed", props[2].id: "proposed"}
    ms = _measurements(store, name)
    assert ms[0].proposal_id == props[0].id
    assert ms[0].params == props[0].params, "parameters come from the proposal"
    assert ms[1].values == {"hardness": 201.5}


def test_second_different_result_for_a_proposal_is_a_conflict(store: Store) -> None:
    name = _create(store)
    (p,) = _propose(store, name, 1)
    _ingest_dicts(store, name, [{"proposal_id": p.id, "hardness": 200.0}])
    same = _ingest_dicts(store, name, [{"proposal_id": p.id, "hardness": 200.0}])
    assert (same.stored, same.already) == (0, 1)
    with pytest.raises(IngestError) as info:
        _ingest_dicts(store, name, [{"proposal_id": p.id, "hardness": 250.0}], source="b.jsonl")
    msg = info.value.problems[0]
    assert msg.startswith("b.jsonl, line 1: proposal")
    assert f"proposal {p.id} already has a result" in msg and "replicate=true" in msg
    assert len(_measurements(store, name)) == 1
    rep = _ingest_dicts(
        store, name, [{"proposal_id": p.id, "hardness": 250.0, "replicate": "true"}]
    )
    assert rep.stored == 1
    assert sorted(m.values["hardness"] for m in _measurements(store, name)) == [200.0, 250.0]
    # the replicate is idempotent as well
    rep2 = _ingest_dicts(store, name, [{"proposal_id": p.id, "hardness": 250.0, "replicate": True}])
    assert (rep2.stored, rep2.already) == (0, 1)


def test_two_results_for_one_proposal_in_one_file(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    (p,) = _propose(sqlite_store, name, 1)
    text = f"proposal_id,hardness\n{p.id},1\n{p.id},2\n"
    err = _fails(sqlite_store, name, text)
    assert err.problems[0].startswith("results.csv, line 3: same proposal as line 2")
    assert "replicate=true" in err.problems[0]
    text = f"proposal_id,hardness,replicate\n{p.id},1,\n{p.id},2,yes\n"
    res = _ingest_text(sqlite_store, name, text)
    assert res.stored == 2


def test_proposal_row_with_its_own_parameters(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    (p,) = _propose(sqlite_store, name, 1)
    same = {**p.params, "proposal_id": p.id, "hardness": 1.0}
    assert _ingest_dicts(sqlite_store, name, [same]).stored == 1
    (q,) = _propose(sqlite_store, name, 1)
    other = {
        **q.params,
        "atmosphere": "air" if q.params["atmosphere"] != "air" else "argon",
        "proposal_id": q.id,
        "hardness": 1.0,
    }
    with pytest.raises(IngestError) as info:
        _ingest_dicts(sqlite_store, name, [other])
    assert f"differ from those of proposal {q.id}" in info.value.problems[0]


def test_proposal_of_another_campaign_is_refused(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    with sqlite_store.session_scope() as session:
        other = create_campaign(session=session, path=COMPOSITION, name="other").name
    (p,) = _propose(sqlite_store, other, 1)
    with pytest.raises(IngestError) as info:
        _ingest_dicts(sqlite_store, name, [{"proposal_id": p.id, "hardness": 1.0}])
    assert f"proposal {p.id} does not belong to campaign '{name}'" in info.value.problems[0]
    assert f"loop status {name}" in info.value.problems[0]


# -- noise, provenance, formulas ----------------------------------------------------------------


def test_std_source_and_provenance_are_stored(store: Store) -> None:
    name = _create(store)
    header = HEADER + ",hardness_std,source,operator,instrument,notes,measured_at"
    text = _csv(
        GOOD[0] + ",1.5,robot,ada,vickers-2,first try,2026-05-01T14:30:00",
        GOOD[1] + ",,,,,,2026-05-01T15:00:00+02:00",
        header=header,
    )
    with store.session_scope() as session:
        res = ingest(
            session=session, name=name, path="-", text=text, fmt="csv", default_source="lab"
        )
    assert res.source == "<stdin>" and res.stored == 2
    m0, m1 = _measurements(store, name)
    assert m0.stds == {"hardness": 1.5} and m1.stds == {}
    assert (m0.source, m1.source) == ("robot", "lab")
    assert m0.provenance["operator"] == "ada" and m0.provenance["instrument"] == "vickers-2"
    assert m0.provenance["notes"] == "first try" and m0.provenance["file"] == "<stdin>"
    assert len(m0.provenance["file_sha256"]) == 64
    # times without an offset are UTC; others are stored as the same instant in UTC
    assert _utc(m0.measured_at) == datetime(2026, 5, 1, 14, 30, tzinfo=timezone.utc)
    assert _utc(m1.measured_at) == datetime(2026, 5, 1, 13, 0, tzinfo=timezone.utc)


def _utc(dt: datetime | None) -> datetime:
    """SQLite reads times back without an offset; the store writes them in UTC."""
    assert dt is not None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def test_formula_column_gives_the_composition(sqlite_store: Store) -> None:
    name = _create(sqlite_store)
    text = (
        "temperature,hold_time,atmosphere,alloy,hardness\n"
        "500,4,argon,Fe0.5Ni0.3Co0.2,210\n"
        "600,5,air,Fe2NiCo,220\n"
    )
    assert _ingest_text(sqlite_store, name, text).stored == 2
    m0, m1 = _measurements(sqlite_store, name)
    assert m0.params["Fe"] == pytest.approx(0.5) and m0.params["Ni"] == pytest.approx(0.3)
    assert m0.params["Co"] == pytest.approx(0.2)
    assert (m1.params["Fe"], m1.params["Ni"], m1.params["Co"]) == pytest.approx((0.5, 0.25, 0.25))
    assert "alloy" not in m0.params


@pytest.mark.parametrize(
    "formula,fragment",
    [
        ("Xx0.5Fe0.5", "holds ['Xx'], which are not chemical elements"),
        ("Fe0.5Cu0.5", "holds ['Cu'], outside the elements ['Fe', 'Ni', 'Co'] of 'alloy'"),
        ("fe0.5ni0.5", "is not a formula pymatgen can read"),
        ("Fe0.1Ni0.5Co0.4", "0.1 is outside [0.2, 1]"),
    ],
)
def test_bad_formulas_are_refused_clearly(sqlite_store: Store, formula: str, fragment: str) -> None:
    name = _create(sqlite_store)
    text = f"temperature,hold_time,atmosphere,alloy,hardness\n500,4,argon,{formula},210\n"
    err = _fails(sqlite_store, name, text)
    assert err.problems[0].startswith("results.csv, line 2, column '")
    assert fragment in err.problems[0]
    if "outside [" not in fragment:
        assert "column 'alloy'" in err.problems[0]


# -- pool campaigns -----------------------------------------------------------------------------


def test_pool_rows_find_their_candidate(store: Store) -> None:
    name = _create(store, P3HT)
    (p,) = _propose(store, name, 1)
    assert p.candidate_idx is not None
    text = (
        "p3ht,d1,d2,d6,d8,conductivity\n"
        "45,0,55,0,0,12.77\n"  # the pool's first row, written as integers
        "75.0,0.0,25.0,0.0,0.0,13.19\n"
    )  # its second
    res = _ingest_text(store, name, text)
    assert res.stored == 2
    rows = _ingest_dicts(store, name, [{"proposal_id": p.id, "conductivity": 1.0}])
    assert rows.stored == 1
    ms = _measurements(store, name)
    assert [m.candidate_idx for m in ms] == [0, 1, p.candidate_idx]


def test_pool_rows_outside_the_bounds_are_refused(sqlite_store: Store) -> None:
    name = _create(sqlite_store, P3HT)
    err = _fails(sqlite_store, name, "p3ht,d1,d2,d6,d8,conductivity\n150,0,0,0,0,1\n")
    assert err.problems[0].startswith("results.csv, line 2, column 'p3ht'")
    assert "outside the bounds" in err.problems[0]


# -- reading files ------------------------------------------------------------------------------


def test_read_rows_csv_line_numbers_skip_blank_lines() -> None:
    rows = read_rows("\ufeffa, b\n1,2\n\n3,4\n", "f.csv")
    assert rows == [(2, {"a": "1", "b": "2"}), (4, {"a": "3", "b": "4"})]


def test_read_rows_jsonl_by_extension_and_by_content() -> None:
    text = '{"a": 1}\n\n{"a": 2.5, "b": "x"}\n'
    assert read_rows(text, "r.jsonl") == [(1, {"a": 1}), (3, {"a": 2.5, "b": "x"})]
    assert read_rows(text, "<stdin>") == read_rows(text, "r.jsonl")
    assert read_rows("a\n1\n", "<stdin>") == [(2, {"a": "1"})]


@pytest.mark.parametrize(
    "text,source,fragment",
    [
        ('{"a": 1}\n{"a": \n', "r.jsonl", "r.jsonl, line 2: not valid JSON"),
        ('{"a": 1}\n[1, 2]\n', "r.jsonl", "r.jsonl, line 2: expected a JSON object, got list"),
        ("a,b\n1,2\n3\n", "r.csv", "r.csv, line 3: 1 fields, the header has 2"),
        ("a,a\n1,2\n", "r.csv", "r.csv, line 1: columns ['a'] appear more than once"),
        ("", "r.csv", "r.csv: the file is empty"),
    ],
)
def test_read_rows_errors(text: str, source: str, fragment: str) -> None:
    with pytest.raises(IngestError) as info:
        read_rows(text, source)
    assert fragment in info.value.message and info.value.hint


def test_ingest_missing_or_binary_file(sqlite_store: Store, tmp_path: Path) -> None:
    name = _create(sqlite_store)
    with sqlite_store.session_scope() as session:
        with pytest.raises(IngestError, match="no such file"):
            ingest(session=session, name=name, path=tmp_path / "gone.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(HEADER.encode() + b"\n500,4,argon,0.5,0.3,0.2,\xe9\n")
    with sqlite_store.session_scope() as session:
        with pytest.raises(IngestError, match="not UTF-8"):
            ingest(session=session, name=name, path=bad)


def test_ingest_file_records_its_hash_and_an_event(sqlite_store: Store, tmp_path: Path) -> None:
    name = _create(sqlite_store)
    f = tmp_path / "batch1.csv"
    f.write_text(_csv(*GOOD), encoding="utf-8")
    with sqlite_store.session_scope() as session:
        res = ingest(session=session, name=name, path=f)
    assert res.source == str(f) and res.stored == 2
    ms = _measurements(sqlite_store, name)
    assert ms[0].provenance["file"] == str(f)
    with sqlite_store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        events = [
            e for e in crud.list_events(session=session, campaign_id=rec.id) if e.kind == "ingested"
        ]
    assert len(events) == 1 and events[0].payload["stored"] == 2
    assert events[0].payload["file_sha256"] == ms[0].provenance["file_sha256"]
