"""Shared fixtures: a fresh store on SQLite, and on the PostgreSQL server when one answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from db import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_ADMIN_URL = os.environ.get("LOOP_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install '.[test]')"
    try:
        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as err:  # any connection failure means: no server here
        return f"no PostgreSQL server answers at {PG_ADMIN_URL} ({type(err).__name__})"


_PG_REASON = _pg_available()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    if _PG_REASON is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {_PG_REASON}")
        pytest.skip(_PG_REASON)
    import psycopg

    name = f"loop_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'loop.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'loop.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    s = open_store(db_url, artifact_dir=tmp_path / "artifacts")
    yield s
    s.dispose()


@pytest.fixture
def p3ht_spec() -> Path:
    return ROOT / "examples" / "p3ht.toml"


@pytest.fixture
def liang_p3ht() -> Path:
    """The shared Liang et al. P3HT file; tests that need it skip where shared data is absent."""
    p = SHARED_DATA / "closed_loop" / "liang2021" / "P3HT_dataset.csv"
    if not p.is_file():
        pytest.skip(f"shared data set not found at {p}")
    return p
