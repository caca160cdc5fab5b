"""The bridge protocol between the planner and the instruments that run its proposals.

A bridge hands open proposals to instruments (`deliver`) and takes their results back
(`collect`), validating each result as strictly as `loop ingest`. Bridges keep no state of
their own that matters: what is open and what is measured lives in the store, so a bridge that
restarts delivers the open proposals again and instruments' repeated results are acknowledged,
not stored twice. Bridges register under a name with `register_bridge`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from db import ProposalRecord, Store
from loop.errors import LoopError

__all__ = ["Bridge", "BRIDGES", "register_bridge", "make_bridge"]


class Bridge(ABC):
    """Delivers proposals of one campaign and collects their results."""

    #: The registry name, set by `register_bridge`.
    name: ClassVar[str] = ""

    def __init__(self, store: Store, campaign: str) -> None:
        self.store = store
        self.campaign = campaign

    @abstractmethod
    def deliver(self, proposals: list[ProposalRecord]) -> None:
        """Hand the campaign's open proposals to the instruments (each once per bridge)."""

    @abstractmethod
    def collect(self, timeout: float) -> int:
        """Store the results that arrive within about `timeout` seconds.

        Returns:
            How many new measurements were stored.
        """

    def close(self) -> None:  # noqa: B027 (most bridges hold no connection)
        """Release connections; the default has none."""


_B = TypeVar("_B", bound=type[Bridge])

#: Bridge classes by name; filled at import time by `register_bridge` only.
BRIDGES: dict[str, type[Bridge]] = {}


def register_bridge(name: str) -> Callable[[_B], _B]:
    def decorate(cls: _B) -> _B:
        if name in BRIDGES and BRIDGES[name] is not cls:
            raise LoopError(f"bridge name '{name}' is registered twice", "rename one of them")
        cls.name = name
        BRIDGES[name] = cls
        return cls

    return decorate


def make_bridge(name: str, store: Store, campaign: str, **options: Any) -> Bridge:
    cls = BRIDGES.get(name)
    if cls is None:
        known = ", ".join(sorted(BRIDGES))
        raise LoopError(f"unknown bridge '{name}'; known: {known}", f"use --via one of {known}")
    return cls(store, campaign, **options)
