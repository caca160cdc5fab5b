"""`loop token`, `loop worker`, `loop run` and `loop serve` through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cli_helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
P3HT = ROOT / "examples" / "p3ht.toml"


def test_tokens_worker_and_run(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("campaign", "create", P3HT)
    made = cli.json("token", "create", "p3ht", "--name", "robot")
    assert made["token"].startswith("loop_") and made["campaign"] == "p3ht"
    listed = cli.json("token", "list")
    assert listed[0]["name"] == "robot" and "token" not in listed[0]
    assert "only its hash is stored" in cli("token", "create", "--admin").stderr
    assert "either for one campaign" in cli.fails("token", "create")
    assert "no token with id 99" in cli.fails("token", "revoke", "99")
    cli("token", "revoke", str(made["id"]))
    assert cli.json("token", "list")[0]["revoked_at"] is not None

    cli("propose", "p3ht", "-n", "3")
    stats = cli.json("worker", "p3ht", "--simulator", "dataset", "--id", "w1")
    assert stats["claimed"] == 3 and stats["completed"] == 3
    assert "simulated by 'dataset'" in cli.fails("worker", "p3ht", "--simulator", "fft")
    assert "heartbeat" in cli.fails("worker", "p3ht", "--lease", "10", "--heartbeat", "20")
    summary = cli.json("run", "p3ht", "--via", "worker", "--budget", "7", "--batch", "2")
    assert summary["finished"] == 7 and summary["measurements"] == 7
    assert "known: folder, mqtt, worker" in cli.fails("run", "p3ht", "--via", "carrier-pigeon")
    assert "--folder" in cli.fails("run", "p3ht", "--via", "folder")
    # the audit log: each of the 7 jobs claimed and completed once, by the workers named
    from db import crud, open_store

    store = open_store(cli.url, artifact_dir=cli.artifacts)
    try:
        with store.session_scope() as session:
            cid = crud.get_campaign(session=session, name="p3ht").id
            events = crud.list_events(session=session, campaign_id=cid)
    finally:
        store.dispose()
    done = [e.payload["proposal"] for e in events if e.kind == "job_completed"]
    assert len(done) == len(set(done)) == 7
    claimed = [e for e in events if e.kind == "job_claimed"]
    assert {e.payload["proposal"] for e in claimed} == set(done)
    assert [e.payload["worker"] for e in claimed][:3] == ["w1", "w1", "w1"]
    assert {e.kind for e in events} >= {"campaign_created", "token_created", "token_revoked"}


def test_serve_answers_with_a_token(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("campaign", "create", P3HT)
    secret = cli.json("token", "create", "p3ht")["token"]
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "LOOP_DATABASE_URL": cli.url, "LOOP_ARTIFACT_DIR": str(cli.artifacts)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loop.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        r = httpx.get(url + "/campaigns/p3ht/status", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200 and r.json()["campaign"] == "p3ht"
        assert httpx.get(url + "/campaigns/p3ht/status").status_code == 401
        schema = httpx.get(url + "/openapi.json").json()
        assert "/campaigns/{name}/proposals/claim" in schema["paths"]
    finally:
        proc.terminate()
        proc.wait(20)
