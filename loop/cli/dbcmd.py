"""`loop db ...`: schema upgrades of the campaign store."""

from __future__ import annotations

import typer

from loop.cli.common import LoopGroup, settings

app = typer.Typer(cls=LoopGroup, no_args_is_help=True, help="Database schema management.")


@app.command()
def upgrade(ctx: typer.Context, revision: str = typer.Argument("head")) -> None:
    """Upgrade the database schema (stores are also upgraded on first use)."""
    from db.session import current_revision, make_engine, resolve_url
    from db.session import upgrade as _upgrade

    url = resolve_url(settings(ctx).db_url)
    engine = make_engine(url)
    before = current_revision(engine)
    _upgrade(engine, revision)
    after = current_revision(engine)
    engine.dispose()
    typer.echo(f"{engine.url.render_as_string(hide_password=True)}: {before or 'empty'} -> {after}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the database's schema revision."""
    from db.session import current_revision, make_engine, resolve_url

    engine = make_engine(resolve_url(settings(ctx).db_url))
    typer.echo(current_revision(engine) or "empty")
    engine.dispose()
