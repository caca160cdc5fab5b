"""What every command shares: settings, the store, output and the one error mapping."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from loop.display import shown_params
from loop.errors import LoopError

__all__ = ["Settings", "LoopGroup", "settings", "open_store", "emit_json", "console", "fail"]

#: Exit code for bad input, bad specs and refused requests.
EXIT_BAD_INPUT = 2
#: Exit code when the store is busy or unreachable (worth retrying).
EXIT_STORE = 3


@dataclass(frozen=True)
class Settings:
    """Read once in the root callback and passed to every command."""

    db_url: str | None
    artifact_dir: Path | None


class LoopGroup(TyperGroup):
    """Maps every `LoopError` to a message on stderr and exit code 2, in one place."""

    def invoke(self, ctx: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        try:
            return super().invoke(ctx)
        except LoopError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OperationalError as err:
            # a busy SQLite file or an unreachable server: nothing was written; say so plainly
            typer.echo(
                f"error: the database is busy or unreachable ({err.orig}); nothing was changed"
                "\n  hint: run the command again; for many concurrent writers use PostgreSQL",
                err=True,
            )
            raise typer.Exit(EXIT_STORE) from None


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, Settings):
        return obj
    return Settings(os.environ.get("LOOP_DATABASE_URL"), None)


def open_store(ctx: typer.Context):  # type: ignore[no-untyped-def]
    import dataclasses
    import getpass

    from db import open_store as _open

    s = settings(ctx)
    try:
        store = _open(s.db_url, artifact_dir=s.artifact_dir)
        try:
            user = getpass.getuser()
        except Exception:  # no user name in this environment (some containers)
            user = "unknown"
        return dataclasses.replace(store, actor=f"cli:{user}")
    except LoopError:
        raise
    except Exception as err:  # a store that cannot be opened is bad input: name it
        from db import resolve_url

        raise LoopError(
            f"cannot open the database {resolve_url(s.db_url)}: {err}",
            "check --db / LOOP_DATABASE_URL and that the server is running",
        ) from None


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_default))


def console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=sys.stdout, width=120, soft_wrap=True)


def fail(message: str, hint: str = "") -> None:
    raise LoopError(message, hint)


def params_text(params: dict[str, Any]) -> str:
    """A parameter dict as `k=v, ...` for a table cell, without whole crystal structures or
    packed microstructure images (`loop.display.shown_params`); `--json` carries them whole."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in shown_params(params).items())


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
