"""`loop run`: the autonomous loop, propose -> run -> ingest -> repeat, through a bridge.

Everything the loop knows is in the store, so it resumes after a crash where it stopped: open
proposals are delivered again (instruments' repeated results are acknowledged, not stored
twice) and a new batch is proposed only when none is open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from db import Store, crud
from loop.adapters.base import Bridge
from loop.engine import propose
from loop.errors import BudgetError, LoopError
from loop.spec import parse_spec

__all__ = ["RunSummary", "run_campaign"]

_OPEN = ("proposed", "running")


@dataclass
class RunSummary:
    """Why and where the loop stopped."""

    reason: str
    finished: int
    measurements: int
    batches_proposed: int
    best: float | None


def _best(values: list[float], direction: str) -> float | None:
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)


def run_campaign(
    store: Store,
    name: str,
    bridge: Bridge,
    *,
    budget: int | None = None,
    target: float | None = None,
    batch: int | None = None,
    propose_batches: bool = True,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """Run campaign `name` until `budget` experiments are finished or `target` is reached.

    Args:
        budget: Finished experiments (completed or failed proposals) to stop at; default the
            spec's budget. Counted from the store, so a resumed run does not start over.
        target: Stop once the first objective reaches this value (default: the spec's
            stop rule, if any).
        batch: Proposals per batch (default: the spec's batch size).
        propose_batches: False only bridges: an operator proposes by other means.
        timeout: Give up after this many seconds (None: run until done or stopped).
    """
    say = echo or (lambda _m: None)
    t0 = time.monotonic()
    proposed = 0
    while True:
        with store.session_scope() as session:
            rec = crud.get_campaign(session=session, name=name)
            spec = parse_spec(rec.spec, f"campaign '{name}'")
            counts = crud.count_proposals_by_status(session=session, campaign_id=rec.id)
            ms = crud.list_measurements(session=session, campaign_id=rec.id)
            open_props = crud.list_proposals(session=session, campaign_id=rec.id, statuses=_OPEN)
        obj = spec.objectives[0]
        if spec.stop is not None and spec.stop.objective:
            obj = next(o for o in spec.objectives if o.name == spec.stop.objective)
        best = _best([m.values[obj.name] for m in ms if obj.name in m.values], obj.direction)
        finished = counts.get("completed", 0) + counts.get("failed", 0)
        limit = spec.budget if budget is None else budget
        goal = target if target is not None else (spec.stop.target if spec.stop else None)

        reason = None
        if goal is not None and best is not None:
            hit = best >= goal if obj.direction == "maximize" else best <= goal
            if hit:
                reason = f"target {obj.name} {goal:g} reached (best {best:g})"
        if reason is None and finished >= limit:
            reason = f"{finished} experiments finished (budget {limit})"
        if reason is None and stop is not None and stop.is_set():
            reason = "stopped on request"
        if reason is None and timeout is not None and time.monotonic() - t0 > timeout:
            reason = f"timed out after {timeout:g} s"
        if reason is None and propose_batches and not open_props:
            n = min(batch or spec.batch_size, limit - finished)
            try:
                with store.session_scope() as session:
                    res = propose(session=session, name=name, n=n, artifact_dir=store.artifact_dir)
                proposed += 1
                open_props = res.proposals
                say(f"batch {res.batch} ({res.strategy}): proposals {[p.id for p in open_props]}")
            except BudgetError as err:
                reason = err.message
        if reason is not None:
            bridge.deliver(open_props)  # withdraws what is no longer open (folder outbox)
            say(f"stopped: {reason}")
            return RunSummary(reason, finished, len(ms), proposed, best)
        if not open_props and not propose_batches:
            time.sleep(poll_seconds)
        bridge.deliver(open_props)
        got = bridge.collect(poll_seconds)
        if got:
            say(f"stored {got} result(s)")


def check_budget(budget: int | None) -> None:
    if budget is not None and budget < 1:
        raise LoopError(f"--budget {budget} is not a number of experiments", "give 1 or more")
