"""Alembic revisions on SQLite and PostgreSQL: up, down, up again, and no drift from the ORM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

import migrations
from db import crud, open_store
from db.models import Base
from db.session import (
    alembic_config,
    current_revision,
    downgrade,
    make_engine,
    resolve_url,
    upgrade,
)

#: Every table of the schema and its unique constraints: name -> columns.
EXPECTED_UNIQUE: dict[str, dict[str, list[str]]] = {
    "campaign": {"uq_campaign_name": ["name"]},
    "campaign_spec": {"uq_campaign_spec_campaign_id_version": ["campaign_id", "version"]},
    "candidate": {"uq_candidate_campaign_id_idx": ["campaign_id", "idx"]},
    "proposal": {},
    "measurement": {
        "uq_measurement_campaign_id_idempotency_key": ["campaign_id", "idempotency_key"],
    },
    "model_fit": {},
    "event": {},
    "api_token": {"uq_api_token_secret_sha256": ["secret_sha256"]},
}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(resolve_url(db_url))
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _unique(engine: Engine, table: str) -> dict[str, list[str]]:
    with engine.connect() as conn:
        found = inspect(conn).get_unique_constraints(table)
    return {str(u["name"]): list(u["column_names"]) for u in found}


def _drift(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_head_constant_matches_script_directory(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    assert script.get_heads() == [migrations.HEAD]
    assert script.get_current_head() == migrations.HEAD


def test_every_revision_has_a_downgrade(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    revisions = list(script.walk_revisions())
    assert revisions, "no Alembic revisions found"
    for rev in revisions:
        assert callable(getattr(rev.module, "downgrade", None)), rev.revision


def test_upgrade_from_empty_creates_every_table(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == migrations.HEAD
    assert _tables(engine) == set(EXPECTED_UNIQUE) | {"alembic_version"}
    for table, expected in EXPECTED_UNIQUE.items():
        assert _unique(engine, table) == expected, table


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert _tables(engine) <= {"alembic_version"}
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == migrations.HEAD
    assert _tables(engine) == set(EXPECTED_UNIQUE) | {"alembic_version"}


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == migrations.HEAD
    assert set(EXPECTED_UNIQUE) <= _tables(engine)


def test_migrated_schema_matches_orm_metadata(engine: Engine) -> None:
    upgrade(engine)
    assert _drift(engine) == []


def test_drift_check_notices_a_missing_table(engine: Engine) -> None:
    # guards the check above: an empty database must show as differing from the ORM
    diffs = _drift(engine)
    added = {d[1].name for d in diffs if d[0] == "add_table"}
    assert added == set(EXPECTED_UNIQUE)


def test_open_store_upgrades_an_empty_database(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url, artifact_dir=tmp_path / "art")
    try:
        assert current_revision(store.engine) == migrations.HEAD
        assert set(EXPECTED_UNIQUE) <= _tables(store.engine)
    finally:
        store.dispose()


def test_open_store_upgrades_a_downgraded_database(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert "campaign" not in _tables(engine)
    store = open_store(db_url, artifact_dir=tmp_path / "art")
    try:
        assert current_revision(store.engine) == migrations.HEAD
        assert set(EXPECTED_UNIQUE) <= _tables(store.engine)
        with store.session_scope() as session:
            crud.create_campaign(session=session, name="after-upgrade", spec={})
        with store.session_scope() as session:
            assert [c.name for c in crud.list_campaigns(session=session)] == ["after-upgrade"]
    finally:
        store.dispose()


def test_open_store_without_auto_upgrade_leaves_database_empty(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url, artifact_dir=tmp_path / "art", auto_upgrade=False)
    try:
        assert current_revision(store.engine) is None
        assert "campaign" not in _tables(store.engine)
    finally:
        store.dispose()


def test_resolve_url_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOP_DATABASE_URL", raising=False)
    assert resolve_url("runs/x.db") == "sqlite:///runs/x.db"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("sqlite:///a.db") == "sqlite:///a.db"
    assert resolve_url(None) == "sqlite:///loop.db"
    monkeypatch.setenv("LOOP_DATABASE_URL", "other.db")
    assert resolve_url(None) == "sqlite:///other.db"
