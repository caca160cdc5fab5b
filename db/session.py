"""Engines, sessions and schema upgrades for the campaign store.

SQLite (a file, WAL mode) is the embedded default; PostgreSQL is the production store. A database
is upgraded to the newest schema the first time a process opens it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "DEFAULT_URL",
    "Store",
    "resolve_url",
    "open_store",
    "upgrade",
    "downgrade",
    "current_revision",
    "alembic_config",
    "make_engine",
]

DEFAULT_URL = "sqlite:///loop.db"


def resolve_url(url: str | None) -> str:
    """Turn `--db` / `LOOP_DATABASE_URL` into an SQLAlchemy URL; a bare path means SQLite."""
    url = url or os.environ.get("LOOP_DATABASE_URL") or DEFAULT_URL
    if "://" not in url:
        url = "sqlite:///" + url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver the project installs
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@dataclass(frozen=True)
class Store:
    """An open campaign store: the engine, a session factory and the artifact directory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    artifact_dir: Path
    #: Who acts when a unit of work names no one (the CLI sets `cli:<user>`).
    actor: str = ""

    @contextmanager
    def session_scope(self, actor: str | None = None) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error.

        Args:
            actor: Who acts (`cli:alice`, `token:3:robot`, `worker:host-12`); every audit event
                written in this unit of work names it.
        """
        session = self.sessions()
        session.info["actor"] = self.actor if actor is None else actor
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    from migrations import SCRIPT_LOCATION

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # let SQLAlchemy's own transaction control decide when BEGIN is sent
        return engine
    return create_engine(url, pool_pre_ping=True)


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema (Alembic) to `revision`."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema (Alembic) to `revision`."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _default_artifacts(url: str) -> Path:
    env = os.environ.get("LOOP_ARTIFACT_DIR")
    if env:
        return Path(env)
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            p = Path(path).expanduser().resolve()
            return p.parent / (p.name + ".artifacts")
    return Path.cwd() / "loop-artifacts"


def open_store(
    url: str | None = None, *, artifact_dir: str | Path | None = None, auto_upgrade: bool = True
) -> Store:
    """Open (and on first use, create or upgrade) the campaign store at `url`."""
    from migrations import HEAD

    full = resolve_url(url)
    engine = make_engine(full)
    if auto_upgrade and current_revision(engine) != HEAD:
        upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    art = Path(artifact_dir) if artifact_dir else _default_artifacts(full)
    return Store(url=full, engine=engine, sessions=sessions, artifact_dir=art)
