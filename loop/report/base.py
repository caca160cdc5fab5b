"""The report's building blocks: what a section sees (`ReportContext`) and gives (`Section`).

Each kind of campaign contributes sections through one small interface: a `Section` subclass
registered with `register_section`, which says whether it applies to a campaign and builds its
numbers (JSON) and its HTML. Later campaign kinds (structures, microstructures, latent spaces)
add their sections the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from db import CampaignRecord, MeasurementRecord, ModelFitRecord, ProposalRecord
from loop.errors import LoopError
from loop.spec import CampaignSpec

__all__ = [
    "ReportContext",
    "Section",
    "SectionOutput",
    "SECTIONS",
    "register_section",
]


@dataclass(frozen=True)
class ReportContext:
    """Everything a section may use, read from the store once."""

    campaign: CampaignRecord
    spec: CampaignSpec
    proposals: list[ProposalRecord]
    measurements: list[MeasurementRecord]
    fits: list[ModelFitRecord]
    status: dict[str, Any]
    n_candidates: int
    artifact_dir: Path
    #: A sample of the candidate pool (`(idx, params)`), at most a few thousand rows.
    candidate_sample: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: The pool's crystal graphs (a `GraphStore`) of a `[structures]` campaign, else None.
    graphs: Any = None

    @property
    def by_id(self) -> dict[int, MeasurementRecord]:
        return {m.id: m for m in self.measurements}


@dataclass(frozen=True)
class SectionOutput:
    """A section's numbers (JSON-able) and its HTML body (figures embedded)."""

    data: dict[str, Any]
    html: str


class Section(ABC):
    """One part of the report."""

    #: Registry name and JSON key, set by `register_section`.
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: Place in the report (lower first).
    order: ClassVar[int] = 100

    def applies(self, ctx: ReportContext) -> bool:
        """Whether the section fits this campaign; all campaigns by default."""
        return True

    @abstractmethod
    def build(self, ctx: ReportContext) -> SectionOutput:
        """The section's numbers and HTML; must not fail on a campaign without data."""


_S = TypeVar("_S", bound=type[Section])

#: Section classes by name; filled at import time by `register_section` only.
SECTIONS: dict[str, type[Section]] = {}


def register_section(name: str, title: str, order: int) -> Callable[[_S], _S]:
    def decorate(cls: _S) -> _S:
        if name in SECTIONS and SECTIONS[name] is not cls:
            raise LoopError(f"report section '{name}' is registered twice", "rename one")
        cls.name, cls.title, cls.order = name, title, order
        SECTIONS[name] = cls
        return cls

    return decorate
