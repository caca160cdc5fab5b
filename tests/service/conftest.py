"""A store with two campaigns and their tokens, the app over it, and a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from db import Store
from loop.campaigns import create_campaign
from loop.service import create_app
from loop.tokens import create_token, revoke

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Tokens:
    admin: str
    a: str
    b: str
    revoked: str


@pytest.fixture
def tokens(store: Store) -> Tokens:
    """Campaigns 'p3ht' (A) and 'other' (B, the same spec) with a token each, and an admin."""
    spec = ROOT / "examples" / "p3ht.toml"
    with store.session_scope(actor="test") as session:
        create_campaign(session=session, path=spec)
        create_campaign(session=session, path=spec, name="other")
        _, admin = create_token(session=session, campaign=None, admin=True, name="ops")
        _, a = create_token(session=session, campaign="p3ht", name="robot")
        _, b = create_token(session=session, campaign="other", name="robot-b")
        old, revoked = create_token(session=session, campaign="p3ht", name="old")
        revoke(session=session, token_id=old.id)
    return Tokens(admin, a, b, revoked)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(store: Store, tokens: Tokens) -> Iterator[str]:
    """The app served by uvicorn in a thread of this process; yields its URL."""
    port = free_port()
    config = uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{port}"
    _wait_up(url)
    yield url
    srv.should_exit = True
    t.join(10)


@pytest.fixture
def server_process(store: Store, tokens: Tokens, tmp_path: Path) -> Iterator[str]:
    """`loop serve` as its own process (so client processes may fork freely); on PostgreSQL
    with two server processes, as production runs it."""
    port = free_port()
    workers = ["--workers", "2"] if store.url.startswith("postgresql") else []
    env = {
        **os.environ,
        "LOOP_DATABASE_URL": store.url,
        "LOOP_ARTIFACT_DIR": str(store.artifact_dir),
    }
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loop.cli", "serve", "--port", str(port), *workers],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _wait_up(url: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"loop serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no server at {url}")
