"""The `mqtt` bridge: proposals out and results in over an MQTT broker (paho-mqtt, QoS 1).

Topics, under a prefix (default `loop`) and the campaign name:

- `<prefix>/<campaign>/proposals` (published): one message per open proposal,
  `{"campaign", "proposal_id", "batch", "params", "predictions"}`;
- `<prefix>/<campaign>/results` (subscribed): `{"proposal_id": 12, "values": {"yield": 0.8}}`,
  optionally with `"stds"`, `"source"`, `"operator"`, `"instrument"`, `"raw_sha256"`,
  `"notes"`;
- `<prefix>/<campaign>/failures` (subscribed): `{"proposal_id": 12, "reason": "..."}`;
- `<prefix>/<campaign>/acks` (published): one answer per result or failure,
  `{"proposal_id", "status": "stored" | "already_stored" | "failed" | "rejected", "error",
  "hint", "problems"}`.

The planner's session with the broker is persistent (fixed client id, no clean session) and a
result is acknowledged to the broker only after it is committed, so results published while the
planner is down, or that arrive as it crashes, are delivered again and stored once.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from typing import Any

from sqlalchemy.exc import OperationalError

from db import ProposalRecord, Store
from loop.adapters.base import Bridge, register_bridge
from loop.errors import ConflictError, LoopError

__all__ = ["MqttBridge", "topics", "parse_result", "parse_failure"]

log = logging.getLogger("loop.adapters.mqtt")

_RESULT_KEYS = {"proposal_id", "values", "stds", "source", "operator", "instrument", "raw_sha256"}
_RESULT_KEYS |= {"notes"}
_FAILURE_KEYS = {"proposal_id", "reason"}
#: Largest payload taken in; a result is a few hundred bytes.
MAX_PAYLOAD = 64 * 1024


def topics(prefix: str, campaign: str) -> dict[str, str]:
    base = f"{prefix.rstrip('/')}/{campaign}"
    return {k: f"{base}/{k}" for k in ("proposals", "results", "failures", "acks")}


def _object(payload: bytes, topic: str, keys: set[str]) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise LoopError(
            f"{topic}: payload of {len(payload)} bytes", f"send at most {MAX_PAYLOAD} bytes"
        )
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise LoopError(
            f"{topic}: payload is not UTF-8 JSON ({err})", "send a JSON object"
        ) from None
    if not isinstance(doc, dict):
        raise LoopError(f"{topic}: payload must be a JSON object", 'send {"proposal_id": ...}')
    unknown = set(doc) - keys
    if unknown:
        raise LoopError(
            f"{topic}: unknown field(s) {sorted(unknown)}", f"allowed: {', '.join(sorted(keys))}"
        )
    pid = doc.get("proposal_id")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid < 2**31:
        raise LoopError(
            f"{topic}: field 'proposal_id' must be a proposal id (a positive integer), got {pid!r}",
            "copy proposal_id from the proposal message",
        )
    return doc


def parse_result(payload: bytes, topic: str = "results") -> dict[str, Any]:
    """Check a result message's shape; its values are checked later, as `loop ingest` does."""
    doc = _object(payload, topic, _RESULT_KEYS)
    for field in ("values", "stds"):
        v = doc.get(field, {})
        if not isinstance(v, dict) or (field == "values" and not v):
            raise LoopError(
                f"{topic}: field '{field}' must be an object of numbers",
                'e.g. "values": {"yield": 0.8}',
            )
    for field in _RESULT_KEYS - {"proposal_id", "values", "stds"}:
        if field in doc and not isinstance(doc[field], str):
            raise LoopError(f"{topic}: field '{field}' must be a string", "send text")
    return doc


def parse_failure(payload: bytes, topic: str = "failures") -> dict[str, Any]:
    doc = _object(payload, topic, _FAILURE_KEYS)
    if not isinstance(doc.get("reason", ""), str):
        raise LoopError(f"{topic}: field 'reason' must be a string", "say why it failed")
    return doc


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


@register_bridge("mqtt")
class MqttBridge(Bridge):
    def __init__(
        self,
        store: Store,
        campaign: str,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = "loop",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        import paho.mqtt.client as mqtt

        super().__init__(store, campaign)
        self.topics = topics(prefix, campaign)
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._delivered: set[int] = set()
        self._connected = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"loop-planner-{campaign}",
            clean_session=False,
            manual_ack=True,
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_message = lambda _c, _u, msg: self._inbox.put(msg)
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as err:
            raise LoopError(
                f"cannot reach the MQTT broker at {host}:{port}: {err}",
                "check --mqtt-host/--mqtt-port and that the broker runs",
            ) from None
        self._client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.close()
            raise LoopError(
                f"the MQTT broker at {host}:{port} did not accept the connection",
                "check the credentials and the broker's log",
            )

    def _on_connect(self, client: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        client.subscribe([(self.topics["results"], 1), (self.topics["failures"], 1)])
        # after a reconnect, instruments may have missed proposals: send the open ones again
        self._delivered.clear()
        self._connected.set()

    def deliver(self, proposals: list[ProposalRecord]) -> None:
        for p in proposals:
            if p.id in self._delivered:
                continue
            msg = {
                "campaign": self.campaign,
                "proposal_id": p.id,
                "batch": p.batch,
                "params": p.params,
                "predictions": p.predictions,
            }
            info = self._client.publish(self.topics["proposals"], json.dumps(_finite(msg)), qos=1)
            info.wait_for_publish(10)
            self._delivered.add(p.id)

    def _ack(self, doc: dict[str, Any]) -> None:
        self._client.publish(self.topics["acks"], json.dumps(_finite(doc)), qos=1)

    def _handle(self, msg: Any) -> int:
        from loop.jobs import complete_job
        from loop.proposals import mark_proposal
        from loop.status import ingest_dict

        pid = None
        try:
            if msg.topic == self.topics["failures"]:
                doc = parse_failure(msg.payload, msg.topic)
                pid = doc["proposal_id"]
                with self.store.session_scope(actor=f"mqtt:{self.campaign}") as session:
                    from db import crud

                    cid = crud.get_campaign(session=session, name=self.campaign).id
                    mark_proposal(
                        session=session,
                        proposal_id=pid,
                        status="failed",
                        reason=doc.get("reason", ""),
                        campaign_id=cid,
                    )
                self._ack({"proposal_id": pid, "status": "failed"})
                return 0
            doc = parse_result(msg.payload, msg.topic)
            pid = doc["proposal_id"]
            prov: dict[str, Any] = {
                k: doc[k] for k in ("operator", "instrument", "raw_sha256", "notes") if k in doc
            }
            with self.store.session_scope(actor=f"mqtt:{self.campaign}") as session:
                res = complete_job(
                    session=session,
                    name=self.campaign,
                    proposal_id=pid,
                    values=doc["values"],
                    stds=doc.get("stds"),
                    source=doc.get("source", "experiment"),
                    provenance=prov,
                )
            out = ingest_dict(res)
            status = "stored" if res.stored else "already_stored"
            self._ack(
                {"proposal_id": pid, "status": status, "measurements": out["measurement_ids"]}
            )
            return res.stored
        except ConflictError as err:
            self._ack(
                {
                    "proposal_id": pid,
                    "status": "rejected",
                    "error": err.message,
                    "hint": err.hint,
                    "problems": [],
                }
            )
            return 0
        except LoopError as err:
            self._ack(
                {
                    "proposal_id": pid,
                    "status": "rejected",
                    "error": err.message,
                    "hint": err.hint,
                    "problems": getattr(err, "problems", [])[:50],
                }
            )
            return 0
        except OperationalError:
            raise  # the store is away: leave the message unacknowledged, to be delivered again
        except Exception as err:  # anything else a payload provokes is refused, not fatal
            log.warning("result on %s refused: %s: %s", msg.topic, type(err).__name__, err)
            self._ack(
                {
                    "proposal_id": pid,
                    "status": "rejected",
                    "error": f"{type(err).__name__}: {err}"[:500],
                    "hint": "send a JSON object as documented for the results topic",
                    "problems": [],
                }
            )
            return 0

    def collect(self, timeout: float) -> int:
        stored = 0
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = (
                    self._inbox.get(timeout=max(left, 0.0))
                    if left > 0
                    else self._inbox.get_nowait()
                )
            except queue.Empty:
                return stored
            stored += self._handle(msg)
            # the broker forgets the message only now that its result is committed (or refused)
            self._client.ack(msg.mid, msg.qos)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
