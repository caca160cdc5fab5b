"""`loop worker`, `loop serve`, `loop run` and `loop token ...`: the planner as a service."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from loop.cli.common import LoopGroup, emit_json, open_store

token_app = typer.Typer(
    cls=LoopGroup, no_args_is_help=True, help="Create, list and revoke HTTP API tokens."
)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM and SIGINT let the current job finish, then stop; handlers restored after."""
    stop = threading.Event()

    def handler(_signum, _frame):  # type: ignore[no-untyped-def]
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def worker(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    simulator: str | None = typer.Option(
        None, "--simulator", help="Simulator registry name (must match the campaign's)."
    ),
    worker_id: str | None = typer.Option(None, "--id", help="Worker name (default: host-pid)."),
    lease: float = typer.Option(60.0, "--lease", help="Lease per job, seconds."),
    heartbeat: float | None = typer.Option(
        None, "--heartbeat", help="Lease renewal period, seconds (default: lease / 3)."
    ),
    max_jobs: int | None = typer.Option(None, "--max-jobs", help="Stop after this many jobs."),
    wait: bool = typer.Option(
        False, "--wait", help="Keep polling an empty queue instead of exiting."
    ),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between polls with --wait."),
    min_seconds: float = typer.Option(
        0.0, "--min-seconds", help="Hold each job at least this long (rehearsals)."
    ),
    seed: int = typer.Option(0, help="Seed of the simulator's noise (per job)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run jobs (open proposals) of a campaign with its simulator until the queue is empty."""
    from dataclasses import asdict

    from loop.worker import run_worker

    store = open_store(ctx)
    with _stop_on_signals() as stop:
        stats = run_worker(
            store,
            campaign,
            simulator=simulator,
            worker_id=worker_id,
            lease_seconds=lease,
            heartbeat_seconds=heartbeat,
            max_jobs=max_jobs,
            wait=wait,
            poll_seconds=poll,
            min_seconds=min_seconds,
            seed=seed,
            stop=stop,
            echo=None if as_json else typer.echo,
        )
    if as_json:
        emit_json(asdict(stats))
    else:
        typer.echo(
            f"worker done: {stats.claimed} claimed, {stats.completed} completed, "
            f"{stats.failed} failed, {stats.conflicts} finished elsewhere"
        )


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    campaign: str | None = typer.Argument(None, help="Campaign the token may reach."),
    admin: bool = typer.Option(False, "--admin", help="An admin token (every campaign)."),
    name: str = typer.Option("", "--name", help="Who or what uses it (kept in the audit log)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Create a token; its secret is printed once and stored only hashed."""
    from loop.tokens import create_token

    store = open_store(ctx)
    with store.session_scope() as session:
        rec, secret = create_token(session=session, campaign=campaign, admin=admin, name=name)
    if as_json:
        emit_json({"id": rec.id, "campaign": rec.campaign, "admin": rec.admin, "token": secret})
        return
    scope = "admin" if rec.admin else f"campaign '{rec.campaign}'"
    typer.echo(f"token {rec.id} ({scope}): {secret}")
    typer.echo("keep it now: only its hash is stored", err=True)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """List tokens (never their secrets)."""
    from dataclasses import asdict

    from loop.tokens import tokens

    store = open_store(ctx)
    with store.session_scope() as session:
        recs = tokens(session=session)
    if as_json:
        emit_json([asdict(r) for r in recs])
        return
    for r in recs:
        scope = "admin" if r.admin else f"campaign {r.campaign}"
        state = "revoked" if r.revoked_at else "live"
        typer.echo(f"{r.id}\t{scope}\t{r.name or '-'}\t{state}\t{r.created_at:%Y-%m-%d %H:%M}")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: int = typer.Argument(..., help="Token id (see `loop token list`)."),
) -> None:
    """Revoke a token at once; requests with it get 401 from then on."""
    from loop.tokens import revoke

    store = open_store(ctx)
    with store.session_scope() as session:
        rec = revoke(session=session, token_id=token_id)
    typer.echo(f"token {rec.id} revoked")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
    max_body: int = typer.Option(
        16 * 1024 * 1024, "--max-body", help="Largest request body, bytes."
    ),
    workers: int = typer.Option(1, "--workers", help="Server processes (uvicorn workers)."),
) -> None:
    """Serve the HTTP API (OpenAPI schema at /openapi.json, docs at /docs)."""
    import uvicorn

    from loop.cli.common import settings

    s = settings(ctx)
    # create or upgrade the schema once, here, not in N server processes at the same time
    open_store(ctx).dispose()
    if workers > 1:
        import os

        # each server process builds its own app from the same settings
        if s.db_url:
            os.environ["LOOP_DATABASE_URL"] = s.db_url
        if s.artifact_dir:
            os.environ["LOOP_ARTIFACT_DIR"] = str(s.artifact_dir)
        os.environ["LOOP_MAX_BODY"] = str(max_body)
        uvicorn.run(
            "loop.service.factory:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
        return
    from loop.service import create_app

    store = open_store(ctx)
    uvicorn.run(create_app(store, max_body=max_body), host=host, port=port, log_level="info")


def run(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name."),
    via: str = typer.Option(..., "--via", help="worker, mqtt or folder."),
    budget: int | None = typer.Option(
        None, "--budget", help="Stop when this many experiments are finished (default: spec's)."
    ),
    target: float | None = typer.Option(
        None, "--target", help="Stop once the first objective reaches this value."
    ),
    batch: int | None = typer.Option(None, "--batch", help="Proposals per batch."),
    no_propose: bool = typer.Option(
        False, "--no-propose", help="Only bridge: deliver open proposals and take results."
    ),
    simulator: str | None = typer.Option(None, "--simulator", help="worker: simulator name."),
    folder: str | None = typer.Option(None, "--folder", help="folder: the watched folder."),
    mqtt_host: str = typer.Option("127.0.0.1", "--mqtt-host", help="mqtt: broker host."),
    mqtt_port: int = typer.Option(1883, "--mqtt-port", help="mqtt: broker port."),
    mqtt_prefix: str = typer.Option("loop", "--mqtt-prefix", help="mqtt: topic prefix."),
    mqtt_user: str | None = typer.Option(None, "--mqtt-user", envvar="LOOP_MQTT_USER"),
    mqtt_password: str | None = typer.Option(
        None, "--mqtt-password", envvar="LOOP_MQTT_PASSWORD", help="mqtt: password (env)."
    ),
    mqtt_tls: bool = typer.Option(False, "--mqtt-tls", help="mqtt: TLS to the broker."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds to wait for results per turn."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up after seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """The autonomous loop: propose, run through a bridge, ingest, repeat; resumable."""
    from dataclasses import asdict

    from loop.adapters import make_bridge
    from loop.autoloop import check_budget, run_campaign
    from loop.errors import LoopError

    check_budget(budget)
    options: dict = {}
    if via == "worker":
        options = {"simulator": simulator}
    elif via == "folder":
        if not folder:
            raise LoopError("--via folder needs --folder DIR", "name the folder instruments watch")
        options = {"folder": folder}
    elif via == "mqtt":
        options = {
            "host": mqtt_host,
            "port": mqtt_port,
            "prefix": mqtt_prefix,
            "username": mqtt_user,
            "password": mqtt_password,
            "tls": mqtt_tls,
        }
    store = open_store(ctx)
    bridge = make_bridge(via, store, campaign, **options)
    with _stop_on_signals() as stop:
        try:
            summary = run_campaign(
                store,
                campaign,
                bridge,
                budget=budget,
                target=target,
                batch=batch,
                propose_batches=not no_propose,
                poll_seconds=poll,
                timeout=timeout,
                stop=stop,
                echo=None if as_json else typer.echo,
            )
        finally:
            bridge.close()
    if as_json:
        emit_json(asdict(summary))
