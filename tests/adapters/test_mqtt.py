"""The MQTT bridge against the Mosquitto broker: a simulated instrument answers over topics."""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from db import Store, crud
from loop.adapters.mqtt import MqttBridge, parse_result, topics
from loop.autoloop import run_campaign
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.errors import LoopError
from loop.simulators import make_simulator
from loop.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
BROKER = ("127.0.0.1", 1883)


def _broker_reason() -> str | None:
    try:
        with socket.create_connection(BROKER, timeout=2):
            return None
    except OSError as err:
        return f"no MQTT broker at {BROKER[0]}:{BROKER[1]} ({err})"


@pytest.fixture
def broker() -> None:
    reason = _broker_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test MQTT: {reason}")
        pytest.skip(reason)


class Instrument:
    """Answers each proposal with the data-set oracle, twice (a retry), after some junk."""

    JUNK: list[bytes] = [
        b"not json",
        b"[1, 2]",
        json.dumps({"proposal_id": 1, "values": {"conductivity": 1}, "colour": "red"}).encode(),
        json.dumps({"proposal_id": "one", "values": {"conductivity": 1}}).encode(),
        json.dumps({"proposal_id": 10**6, "values": {"conductivity": 1}}).encode(),
    ]

    def __init__(self, store: Store, prefix: str) -> None:
        import paho.mqtt.client as mqtt

        with store.session_scope() as session:
            spec = parse_spec(crud.get_campaign(session=session, name="p3ht").spec)
        self.sim = make_simulator(spec)
        self.rng = np.random.default_rng(1)
        self.t = topics(prefix, "p3ht")
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.answered: set[int] = set()
        self.bad_value_for: int | None = None
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lab-{uuid.uuid4().hex}")
        self.c.on_message = self._on_message
        ready = threading.Event()
        self.c.on_subscribe = lambda *_a: ready.set()
        self.c.connect(*BROKER)
        self.c.loop_start()
        self.c.subscribe([(self.t["proposals"], 1), (self.t["acks"], 1)])
        assert ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        if msg.topic == self.t["acks"]:
            self.acks.put(doc)
            return
        pid = doc["proposal_id"]
        if pid in self.answered:
            return
        self.answered.add(pid)
        if self.bad_value_for is None:
            self.bad_value_for = pid
            for junk in self.JUNK:
                self.c.publish(self.t["results"], junk, qos=1)
            bad = {"proposal_id": pid, "values": {"conductivity": "high"}}
            self.c.publish(self.t["results"], json.dumps(bad), qos=1)
        result = {"proposal_id": pid, "values": self.sim.measure(doc["params"], self.rng)}
        result["instrument"] = "probe-station"
        for _ in range(2):
            self.c.publish(self.t["results"], json.dumps(result), qos=1)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()

    def all_acks(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.acks.get(timeout=1.0))
            except queue.Empty:
                return out


@pytest.fixture
def p3ht(store: Store) -> str:
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    return "p3ht"


def test_loop_over_mqtt_stores_each_result_once(broker: None, store: Store, p3ht: str) -> None:
    prefix = f"loop-test-{uuid.uuid4().hex[:8]}"
    lab = Instrument(store, prefix)
    bridge = MqttBridge(store, p3ht, prefix=prefix, client_id=f"planner-{prefix}")
    try:
        summary = run_campaign(store, p3ht, bridge, budget=8, batch=4, timeout=120)
    finally:
        bridge.close()
    acks = lab.all_acks()
    lab.close()
    assert summary.finished == 8 and summary.measurements == 8, summary
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=p3ht)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
    assert sorted(m.proposal_id for m in ms) == sorted(lab.answered)
    assert all(m.provenance.get("instrument") == "probe-station" for m in ms)
    by = {}
    for a in acks:
        by.setdefault(a["status"], []).append(a)
    assert len(by["stored"]) == 8
    assert len(by.get("already_stored", [])) >= 7  # the retries (the last may race the stop)
    rejected = by["rejected"]
    assert len(rejected) == len(Instrument.JUNK) + 1
    errors = " | ".join(r["error"] for r in rejected)
    assert "not UTF-8 JSON" in errors and "JSON object" in errors and "'colour'" in errors
    assert "proposal_id" in errors and "has no proposal 1000000" in errors
    assert any("conductivity" in p for r in rejected for p in r["problems"])


def test_results_sent_while_the_planner_is_down_arrive(
    broker: None, store: Store, p3ht: str, tmp_path: Path
) -> None:
    import paho.mqtt.client as mqtt

    prefix = f"loop-test-{uuid.uuid4().hex[:8]}"
    cid = f"planner-{prefix}"
    MqttBridge(store, p3ht, prefix=prefix, client_id=cid).close()  # the subscription persists
    with store.session_scope() as session:
        res = propose(session=session, name=p3ht, n=3, artifact_dir=tmp_path)
    lab = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lab-{prefix}")
    lab.connect(*BROKER)
    lab.loop_start()
    t = topics(prefix, p3ht)
    for p in res.proposals:
        msg = {"proposal_id": p.id, "values": {"conductivity": 100.0 + p.id}}
        lab.publish(t["results"], json.dumps(msg), qos=1).wait_for_publish(10)
    lab.loop_stop()
    lab.disconnect()
    bridge = MqttBridge(store, p3ht, prefix=prefix, client_id=cid)
    try:
        got = 0
        for _ in range(20):
            got += bridge.collect(0.5)
            if got == 3:
                break
    finally:
        bridge.close()
    assert got == 3
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name=p3ht)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
    assert sorted(m.values["conductivity"] for m in ms) == sorted(
        100.0 + p.id for p in res.proposals
    )


def test_result_messages_are_checked_strictly() -> None:
    ok = parse_result(b'{"proposal_id": 3, "values": {"y": 1.5}, "notes": "ok"}')
    assert ok["proposal_id"] == 3
    for bad, why in [
        (b'{"proposal_id": true, "values": {"y": 1}}', "proposal_id"),
        (b'{"proposal_id": 3, "values": {}}', "values"),
        (b'{"proposal_id": 3, "values": [1]}', "values"),
        (b'{"proposal_id": 3, "values": {"y": 1}, "notes": 5}', "notes"),
        (b"\xff\xfe", "UTF-8"),
        (b"x" * 70_000, "bytes"),
    ]:
        with pytest.raises(LoopError, match=why):
            parse_result(bad)
