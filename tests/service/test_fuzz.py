"""Fuzzing: the HTTP API from its own OpenAPI schema, the ingest parser from random rows.

Neither may answer 5xx, leak a traceback or store part of a refused submission.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from db import Store, crud, open_store
from loop.campaigns import create_campaign
from loop.errors import LoopError
from loop.ingest import ingest, read_rows
from loop.service import create_app
from loop.tokens import create_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fuzz")
    store = open_store(f"sqlite:///{tmp / 'loop.db'}", artifact_dir=tmp / "art")
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
        _, admin = create_token(session=session, campaign=None, admin=True, name="fuzz")
        _, robot = create_token(session=session, campaign="p3ht", name="fuzz-robot")
    yield store, {"admin": admin, "campaign": robot}
    store.dispose()


_TABLES = ("campaign", "campaign_spec", "candidate", "proposal", "measurement", "event")


def _rows(store: Store) -> dict[str, int]:
    """Row counts of every table a request could write (tokens aside: their use is logged)."""
    from sqlalchemy import text

    with store.session_scope() as session:
        return {
            t: int(session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in _TABLES
        }


@pytest.mark.parametrize("token", ["admin", "campaign"])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_never_errors(fuzz_store: Any, mode: str, token: str) -> None:
    """Every operation of the schema, with valid (positive) and invalid (negative) requests,
    as an admin and as a campaign's own token; a refused request writes nothing."""
    store, secrets = fuzz_store
    secret = secrets[token]
    api = schemathesis.openapi.from_asgi("/openapi.json", create_app(store))
    gen = schemathesis.GenerationMode(mode)
    labels: list[str] = []
    skipped: list[str] = []
    for result in api.get_all_operations():
        op = result.ok()
        labels.append(op.label)

        @given(case=op.as_strategy(generation_mode=gen))
        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            if case.path_parameters and "name" in case.path_parameters:
                # half the cases on the real campaign, so the routes get past the lookup
                if hash(repr(case.body)) % 2 == 0:
                    case.path_parameters["name"] = "p3ht"
            before = _rows(store)
            response = case.call(headers={"Authorization": f"Bearer {secret}"})
            assert response.status_code < 500, (case.method, case.path, response.text)
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                body = response.json()
                assert body["error"] and isinstance(body["hint"], str)
                assert _rows(store) == before, (case.method, case.path, response.text)

        try:
            run()
        except Unsatisfiable:  # nothing of this operation can be made invalid (GET /health)
            assert mode == "negative"
            skipped.append(op.label)
    assert len(labels) >= 15 and all(label.startswith("GET ") for label in skipped), skipped


CELL = st.one_of(
    st.text(alphabet=string.printable, max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "nan", "-inf", "1e309", "0x10", "1,5", "true", "None", " 3 "]),
)
COLUMNS = st.sampled_from(
    [
        "p3ht",
        "d1",
        "d2",
        "d6",
        "d8",
        "conductivity",
        "conductivity_std",
        "proposal_id",
        "replicate",
        "measured_at",
        "measurement_id",
        "source",
        "notes",
        "colour",
        "",
    ]
)


@st.composite
def csv_text(draw: Any) -> str:
    cols = draw(st.lists(COLUMNS, min_size=1, max_size=8))
    rows = draw(st.lists(st.lists(CELL, min_size=len(cols), max_size=len(cols)), max_size=6))
    sep = draw(st.sampled_from([",", ";", "\t"]))
    lines = [sep.join(cols)] + [sep.join(c.replace("\n", " ") for c in r) for r in rows]
    if draw(st.booleans()):
        lines.append(draw(st.text(max_size=30)))
    return "\n".join(lines) + "\n"


@given(text=csv_text())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_ingest_parser_refuses_cleanly_or_stores_all(text: str, fuzz_store: Any) -> None:
    store: Store = fuzz_store[0]
    with store.session_scope() as session:
        before = crud.count_measurements(
            session=session, campaign_id=crud.get_campaign(session=session, name="p3ht").id
        )
    try:
        with store.session_scope() as session:
            res = ingest(session=session, name="p3ht", path="-", text=text, label="fuzz.csv")
    except LoopError as err:
        message = str(err)
        assert "Traceback" not in message and message.strip()
        stored = 0
    else:
        stored = res.stored
        rows = read_rows(text, "fuzz.csv", None)
        assert res.rows == len(rows)
    with store.session_scope() as session:
        after = crud.count_measurements(
            session=session, campaign_id=crud.get_campaign(session=session, name="p3ht").id
        )
    assert after == before + stored


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@given(rows=st.lists(st.dictionaries(COLUMNS, JSON_VALUE, max_size=8), min_size=1, max_size=5))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_ingest_of_json_rows_refuses_cleanly_or_stores_all(
    rows: list[Any], fuzz_store: Any
) -> None:
    import json

    store: Store = fuzz_store[0]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    with store.session_scope() as session:
        before = crud.count_measurements(
            session=session, campaign_id=crud.get_campaign(session=session, name="p3ht").id
        )
    try:
        with store.session_scope() as session:
            res = ingest(session=session, name="p3ht", path="-", text=text, fmt="jsonl")
        stored = res.stored
    except LoopError as err:
        assert str(err).strip()
        stored = 0
    with store.session_scope() as session:
        after = crud.count_measurements(
            session=session, campaign_id=crud.get_campaign(session=session, name="p3ht").id
        )
    assert after == before + stored
