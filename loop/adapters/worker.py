"""The `worker` bridge: run open proposals in this process with the campaign's simulator."""

from __future__ import annotations

import time

from db import ProposalRecord, Store
from loop.adapters.base import Bridge, register_bridge
from loop.worker import default_worker_id, run_worker

__all__ = ["WorkerBridge"]


@register_bridge("worker")
class WorkerBridge(Bridge):
    """Each `collect` drains the job queue once (jobs leased to a dead worker return when their
    lease expires)."""

    def __init__(
        self,
        store: Store,
        campaign: str,
        *,
        simulator: str | None = None,
        lease_seconds: float = 60.0,
        seed: int = 0,
    ) -> None:
        super().__init__(store, campaign)
        self.simulator = simulator
        self.lease_seconds = lease_seconds
        self.seed = seed
        self.worker_id = default_worker_id()

    def deliver(self, proposals: list[ProposalRecord]) -> None:
        return None  # the store is the queue

    def collect(self, timeout: float) -> int:
        stats = run_worker(
            self.store,
            self.campaign,
            simulator=self.simulator,
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            seed=self.seed,
        )
        if stats.claimed == 0:
            time.sleep(timeout)
        return stats.completed
