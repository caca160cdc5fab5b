"""The HTTP API: tokens reach only their campaign, errors are JSON, the loop runs end to end."""

from __future__ import annotations

import multiprocessing as mp
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from db import Store, crud
from loop.client import AccessError, LoopClient
from loop.errors import ConflictError, IngestError, NotFoundError
from loop.service import create_app
from loop.simulators import make_simulator
from loop.spec import parse_spec

#: A body every route accepts (fields a route does not know are refused before any access).
BODIES: dict[str, Any] = {
    "propose": {"n": 1},
    "measurements": {"rows": [{"proposal_id": 1, "conductivity": 1.0}]},
    "claim": {"worker": "w"},
    "heartbeat": {"worker": "w"},
    "complete": {"values": {"conductivity": 1.0}},
    "fail": {"reason": "x"},
    "abandon": {"reason": "x"},
    "tokens": {"name": "x"},
}


def _calls(app: Any, campaign: str) -> list[tuple[str, str, Any]]:
    """Every campaign route of the app, filled in for `campaign` (proposal 1)."""
    out = []
    for r in app.routes:
        if not isinstance(r, APIRoute) or "{name}" not in r.path:
            continue
        path = r.path.replace("{name}", campaign).replace("{proposal_id}", "1")
        for method in r.methods:
            body = BODIES.get(path.rsplit("/", 1)[-1]) if method == "POST" else None
            out.append((method, path, body))
    return out


def test_a_token_never_reaches_another_campaign(store: Store, tokens: Any) -> None:
    app = create_app(store)
    calls = _calls(app, "other")
    assert len(calls) >= 13
    with TestClient(app) as http:
        for method, path, body in calls + _calls(app, "no-such-campaign"):
            for tok, code in [(tokens.a, 403), (None, 401), (tokens.revoked, 401), ("junk", 401)]:
                headers = {"Authorization": f"Bearer {tok}"} if tok else {}
                r = http.request(method, path, json=body, headers=headers)
                assert r.status_code == code, (method, path, tok, r.text)
                err = r.json()
                assert err["error"] and err["hint"] and "Traceback" not in r.text
        # nothing was written to B
        r = http.get("/campaigns/other/status", headers={"Authorization": f"Bearer {tokens.b}"})
        assert r.status_code == 200 and r.json()["measurements"] == 0
        assert r.json()["proposals"] == {} or sum(r.json()["proposals"].values()) == 0
        # a campaign token lists only its campaign; creating campaigns needs an admin
        listed = http.get("/campaigns", headers={"Authorization": f"Bearer {tokens.a}"}).json()
        assert [c["campaign"] for c in listed] == ["p3ht"]
        r = http.post(
            "/campaigns",
            json={"spec": {"name": "x"}},
            headers={"Authorization": f"Bearer {tokens.a}"},
        )
        assert r.status_code == 403


def test_errors_are_json_with_a_hint(store: Store, tokens: Any) -> None:
    app = create_app(store, max_body=2000)
    auth = {"Authorization": f"Bearer {tokens.a}"}
    with TestClient(app) as http:
        r = http.post("/campaigns/p3ht/propose", json={"n": 0}, headers=auth)
        assert r.status_code == 422 and r.json()["problems"]
        r = http.post("/campaigns/p3ht/propose", json={"nn": 2}, headers=auth)
        assert r.status_code == 422
        big = {"rows": [{"p3ht": 1.0, "conductivity": 1.0}] * 200}
        r = http.post("/campaigns/p3ht/measurements", json=big, headers=auth)
        assert r.status_code == 413 and "max-body" in r.json()["hint"]
        r = http.get("/nowhere", headers=auth)
        assert r.status_code == 404 and r.json()["error"]
        r = http.post(
            "/campaigns/p3ht/measurements",
            json={"rows": [{"p3ht": "lots", "conductivity": "x"}]},
            headers=auth,
        )
        assert r.status_code == 422
        assert any("line 1" in p and "'conductivity'" in p for p in r.json()["problems"])
        r = http.post(
            "/campaigns/p3ht/proposals/99/complete", json=BODIES["complete"], headers=auth
        )
        assert r.status_code == 404 and "proposal 99" in r.json()["error"]
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        assert crud.count_measurements(session=session, campaign_id=rec.id) == 0


def test_client_runs_the_loop_end_to_end(store: Store, tokens: Any, server: str) -> None:
    with store.session_scope() as session:
        spec = parse_spec(crud.get_campaign(session=session, name="p3ht").spec)
    sim = make_simulator(spec)
    import numpy as np

    rng = np.random.default_rng(0)
    with LoopClient(server, tokens.a) as lab:
        assert lab.health() == {"status": "ok"}
        batch = lab.propose("p3ht", n=3)
        ids = [p["id"] for p in batch["proposals"]]
        first = lab.complete(
            "p3ht", ids[0], sim.measure(batch["proposals"][0]["params"], rng), worker="robot-1"
        )
        assert first["stored"] == 1
        again = lab.complete(
            "p3ht", ids[0], sim.measure(batch["proposals"][0]["params"], rng), worker="robot-1"
        )
        assert again["stored"] == 0 and again["already_stored"] == 1
        with pytest.raises(ConflictError, match="already has a result"):
            lab.complete("p3ht", ids[0], {"conductivity": -1.0})
        job = lab.claim("p3ht", "robot-2", lease_seconds=30)
        assert job is not None and job["id"] == ids[1] and job["lease_owner"] == "robot-2"
        lab.heartbeat("p3ht", ids[1], "robot-2")
        with pytest.raises(ConflictError, match="does not hold"):
            lab.heartbeat("p3ht", ids[1], "robot-3")
        lab.fail("p3ht", ids[2], reason="film cracked")
        with pytest.raises(IngestError) as bad:
            lab.ingest("p3ht", [{"proposal_id": ids[1], "conductivity": "n/a"}])
        assert "line 1" in bad.value.problems[0]
        row = {**batch["proposals"][1]["params"], "conductivity": 3.5, "measurement_id": "ext-1"}
        assert lab.ingest("p3ht", [row])["stored"] == 1
        assert lab.ingest("p3ht", [row])["already_stored"] == 1
        st = lab.status("p3ht")
        assert st["measurements"] == 2
        assert st["proposals"]["failed"] == 1
        rows = lab.export("p3ht")["rows"]
        assert len(rows) == 2
        events = lab.events("p3ht")
        assert {"job_claimed", "job_completed", "proposal_failed", "ingested"} <= {
            e["kind"] for e in events
        }
        setup = {"campaign_created", "token_created", "token_revoked"}
        assert all(e["actor"].startswith("token:") for e in events if e["kind"] not in setup)
        with pytest.raises(NotFoundError):
            lab.fail("p3ht", 10_000, reason="x")
    with LoopClient(server, tokens.b) as other, pytest.raises(AccessError) as denied:
        other.status("p3ht")
    assert denied.value.status == 403
    with LoopClient(server, tokens.admin) as ops:
        made = ops._call("POST", "/campaigns/p3ht/tokens", json={"name": "new"}, retry=False)
        assert re.fullmatch(r"loop_[\w-]{43}", made["token"])
    with LoopClient(server, made["token"]) as new:
        assert new.status("p3ht")["measurements"] == 2


def _client_main(url: str, token: str, k: int, rounds: int, out: Any) -> None:
    import numpy as np

    from db import open_store

    try:
        with LoopClient(url, token, retries=20) as lab:
            store = open_store(url_db := out["db"], artifact_dir=out["art"])
            with store.session_scope() as session:
                spec = parse_spec(crud.get_campaign(session=session, name="p3ht").spec)
            store.dispose()
            del url_db
            sim = make_simulator(spec)
            rng = np.random.default_rng(k)
            for _ in range(rounds):
                batch = lab.propose("p3ht", n=2)
                for p in batch["proposals"]:
                    lab.complete("p3ht", p["id"], sim.measure(p["params"], rng), worker=f"c{k}")
                lab.ingest(
                    "p3ht",
                    [
                        {
                            "p3ht": 80.0,
                            "d1": 5.0,
                            "d2": 5.0,
                            "d6": 5.0,
                            "d8": 5.0,
                            "conductivity": float(k),
                            "measurement_id": f"client-{k}",
                        }
                    ],
                )
    except Exception as err:  # report to the parent, which fails the test
        out["errors"].append(f"client {k}: {type(err).__name__}: {err}")


def test_concurrent_clients_lose_nothing(
    store: Store, tokens: Any, server_process: str, tmp_path: Path
) -> None:
    from loop.campaigns import update_campaign

    with store.session_scope() as session:
        update_campaign(session=session, name="p3ht", changes={"initial_design": 60})
    clients, rounds = 4, 4
    with mp.Manager() as manager:
        shared = manager.dict(db=store.url, art=str(store.artifact_dir))
        shared["errors"] = manager.list()
        ctx = mp.get_context("fork")
        procs = [
            ctx.Process(target=_client_main, args=(server_process, tokens.a, k, rounds, shared))
            for k in range(clients)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
        errors = list(shared["errors"])
    assert errors == []
    assert all(p.exitcode == 0 for p in procs)
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        props = crud.list_proposals(session=session, campaign_id=rec.id)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
    n_jobs = clients * rounds * 2
    assert len(props) == n_jobs and {p.status for p in props} == {"completed"}
    # no candidate was handed out twice: each propose saw the others' batches as pending
    assert len({p.candidate_idx for p in props}) == n_jobs
    assert len({p.batch for p in props}) == clients * rounds
    assert len(ms) == n_jobs + clients
    assert sorted(m.proposal_id for m in ms if m.proposal_id) == sorted(p.id for p in props)
    # the server's access log: every request answered, none with a 5xx (the clients' retries
    # would otherwise hide a busy store)
    log = (tmp_path / "serve.log").read_text()
    answers = re.findall(r'"(?:GET|POST) [^"]+ HTTP/1\.1" (\d{3})', log)
    assert len(answers) >= clients * rounds * 4, log[-2000:]
    assert [a for a in answers if a.startswith("5")] == [], log[-2000:]


def test_admin_creates_campaigns_over_http(store: Store, tokens: Any) -> None:
    spec = {
        "name": "anneal",
        "budget": 10,
        "parameters": [
            {"type": "float", "name": "temperature", "low": 300.0, "high": 900.0},
            {"type": "float", "name": "hours", "low": 0.5, "high": 8.0},
        ],
        "objectives": [{"name": "hardness", "direction": "maximize"}],
    }
    app = create_app(store)
    admin = {"Authorization": f"Bearer {tokens.admin}"}
    with TestClient(app) as http:
        r = http.post("/campaigns", json={"spec": spec}, headers=admin)
        assert r.status_code == 201 and r.json()["name"] == "anneal"
        r = http.post("/campaigns", json={"spec": spec}, headers=admin)
        assert r.status_code == 409 and "already exists" in r.json()["error"]
        bad = {**spec, "name": "bad", "budget": -1}
        r = http.post("/campaigns", json={"spec": bad}, headers=admin)
        assert r.status_code == 422 and "budget" in r.text
        made = http.post("/campaigns/anneal/tokens", json={"name": "furnace"}, headers=admin)
        furnace = {"Authorization": f"Bearer {made.json()['token']}"}
        batch = http.post("/campaigns/anneal/propose", json={"n": 2}, headers=furnace).json()
        assert [p["strategy"] for p in batch["proposals"]] == ["sobol", "sobol"]
        assert http.get("/campaigns/p3ht", headers=furnace).status_code == 403
        events = http.get("/campaigns/anneal/events", headers=admin).json()
        assert events[0]["kind"] == "campaign_created" and events[0]["actor"].startswith("token:")


def test_hostile_bodies_are_refused_not_crashed_on(store: Store, tokens: Any) -> None:
    from loop.engine import propose

    with store.session_scope() as session:
        pid = propose(session=session, name="p3ht", n=1, artifact_dir=store.artifact_dir)
        pid = pid.proposals[0].id
    auth = {"Authorization": f"Bearer {tokens.a}", "content-type": "application/json"}
    big = "1" + "0" * 400  # a JSON integer too large for a float
    deep = "[" * 5000 + "]" * 5000
    cases = [
        (f"/campaigns/p3ht/proposals/{pid}/complete", f'{{"values": {{"conductivity": {big}}}}}'),
        (
            f"/campaigns/p3ht/proposals/{pid}/complete",
            f'{{"values": {{"conductivity": 1.0}}, "stds": {{"conductivity": {big}}}}}',
        ),
        (
            "/campaigns/p3ht/measurements",
            f'{{"rows": [{{"proposal_id": {big}, "conductivity": 1}}]}}',
        ),
        (
            "/campaigns/p3ht/measurements",
            f'{{"text": "{{\\"conductivity\\": {deep}}}", "format": "jsonl"}}',
        ),
    ]
    app = create_app(store, max_body=100_000)
    with TestClient(app, raise_server_exceptions=False) as http:
        for path, body in cases:
            r = http.post(path, content=body, headers=auth)
            assert r.status_code == 422, (path, r.status_code, r.text[:300])
            assert r.json()["error"]
        # no token: 401 before the body is even read
        r = http.post("/campaigns/p3ht/measurements", content="not json", headers={})
        assert r.status_code == 401
        # a body of undeclared length over the limit: 413, not a parse error

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(30):
                yield b"x" * 10_000

        r = http.post("/campaigns/p3ht/measurements", content=chunks(), headers=auth)
        assert r.status_code == 413
        # under the limit, a chunked body is handed on whole
        ok = b'{"rows": [{"proposal_id": %d, "conductivity": 5.0}]}' % pid
        r = http.post(
            "/campaigns/p3ht/measurements", content=iter([ok[:10], ok[10:]]), headers=auth
        )
        assert r.status_code == 200 and r.json()["stored"] == 1


def _counts(store: Store, name: str) -> tuple[int, int, int, list[str]]:
    """Measurements, proposals, events and proposal statuses of one campaign."""
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=name)
        props = crud.list_proposals(session=session, campaign_id=rec.id)
        return (
            crud.count_measurements(session=session, campaign_id=rec.id),
            len(props),
            len(crud.list_events(session=session, campaign_id=rec.id)),
            [p.status for p in props],
        )


def test_a_token_cannot_touch_another_campaigns_proposal_through_its_own_path(
    store: Store, tokens: Any
) -> None:
    """A's routes with one of B's proposal ids answer 404 and change nothing in B."""
    from loop.engine import propose

    with store.session_scope() as session:
        theirs = propose(session=session, name="other", n=2, artifact_dir=store.artifact_dir)
    ids = [p.id for p in theirs.proposals]
    before = _counts(store, "other")
    app = create_app(store)
    auth = {"Authorization": f"Bearer {tokens.a}"}
    routes = [
        r
        for r in app.routes
        if isinstance(r, APIRoute) and "{proposal_id}" in r.path and "POST" in r.methods
    ]
    assert {r.path.rsplit("/", 1)[-1] for r in routes} >= {
        "heartbeat",
        "complete",
        "fail",
        "abandon",
    }
    with TestClient(app) as http:
        for r in routes:
            verb = r.path.rsplit("/", 1)[-1]
            path = r.path.replace("{name}", "p3ht").replace("{proposal_id}", str(ids[0]))
            got = http.post(path, json=BODIES[verb], headers=auth)
            assert got.status_code == 404, (path, got.text)
            assert "Traceback" not in got.text and got.json()["hint"]
        # a measurement row naming B's proposal is refused too
        row = {"proposal_id": ids[1], "conductivity": 1.0}
        got = http.post("/campaigns/p3ht/measurements", json={"rows": [row]}, headers=auth)
        assert got.status_code == 422 and "does not belong" in got.json()["problems"][0]
    assert _counts(store, "other") == before
    assert _counts(store, "p3ht")[0] == 0


def test_only_the_lease_holder_fails_a_job_over_http(store: Store, tokens: Any) -> None:
    from loop.engine import propose

    with store.session_scope() as session:
        ids = [
            p.id
            for p in propose(
                session=session, name="p3ht", n=2, artifact_dir=store.artifact_dir
            ).proposals
        ]
    auth = {"Authorization": f"Bearer {tokens.a}"}
    with TestClient(create_app(store)) as http:
        job = http.post("/campaigns/p3ht/proposals/claim", json={"worker": "w1"}, headers=auth)
        assert job.status_code == 200 and job.json()["id"] == ids[0]
        other = http.post(
            f"/campaigns/p3ht/proposals/{ids[0]}/fail",
            json={"reason": "not mine", "worker": "w2"},
            headers=auth,
        )
        assert other.status_code == 409 and "does not hold" in other.json()["error"]
        assert _counts(store, "p3ht")[3] == ["running", "proposed"]
        own = http.post(
            f"/campaigns/p3ht/proposals/{ids[0]}/fail",
            json={"reason": "solver diverged", "worker": "w1"},
            headers=auth,
        )
        assert own.status_code == 200 and own.json()["status"] == "failed"
        # an operator (no worker named) may fail an open proposal by hand
        hand = http.post(f"/campaigns/p3ht/proposals/{ids[1]}/fail", json={}, headers=auth)
        assert hand.status_code == 200
    assert _counts(store, "p3ht")[3] == ["failed", "failed"]


def test_internal_errors_and_a_busy_store_answer_json_without_tracebacks(
    store: Store, tokens: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception is a 500 with a reference id (the traceback goes to the log
    only); a store that is locked or unreachable is a 503 with Retry-After."""
    import sqlalchemy.exc

    import loop.status

    auth = {"Authorization": f"Bearer {tokens.a}"}

    def crash(**_kw: Any) -> Any:
        raise RuntimeError("secret internals /srv/loop/db.py line 12")

    monkeypatch.setattr(loop.status, "campaign_status", crash)
    with TestClient(create_app(store), raise_server_exceptions=False) as http:
        r = http.get("/campaigns/p3ht/status", headers=auth)
        assert r.status_code == 500
        body = r.json()
        ref = re.fullmatch(r"internal error ([0-9a-f]{12})", body["error"])
        assert ref and "server log" in body["hint"]
        assert "secret" not in r.text and "Traceback" not in r.text
        assert any(ref.group(1) in rec.getMessage() for rec in caplog.records)

        def busy(**_kw: Any) -> Any:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))

        monkeypatch.setattr(loop.status, "campaign_status", busy)
        r = http.get("/campaigns/p3ht/status", headers=auth)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["hint"] == "retry in a moment" and "locked" not in r.text
