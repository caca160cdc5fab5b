"""Plain records the store hands out; ORM rows never leave `db`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "CampaignRecord",
    "ProposalRecord",
    "MeasurementRecord",
    "ModelFitRecord",
    "EventRecord",
    "NewMeasurement",
    "NewProposal",
]


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    spec: dict[str, Any]
    spec_version: int
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProposalRecord:
    id: int
    campaign_id: int
    batch: int
    candidate_idx: int | None
    params: dict[str, Any]
    status: str
    strategy: str
    predictions: dict[str, Any]
    acq_value: float | None
    model_fit_id: int | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    reason: str
    created_at: datetime
    updated_at: datetime
    attempts: int = 0


@dataclass(frozen=True)
class MeasurementRecord:
    id: int
    campaign_id: int
    proposal_id: int | None
    candidate_idx: int | None
    params: dict[str, Any]
    values: dict[str, float]
    stds: dict[str, float]
    source: str
    provenance: dict[str, Any]
    idempotency_key: str
    measured_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ModelFitRecord:
    id: int
    campaign_id: int | None
    name: str
    kind: str
    settings: dict[str, Any]
    data_version: str
    metrics: dict[str, Any]
    heldout: list[Any]
    checkpoint_path: str | None
    checkpoint_sha256: str | None
    created_at: datetime


@dataclass(frozen=True)
class EventRecord:
    id: int
    campaign_id: int | None
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    actor: str = ""


@dataclass(frozen=True)
class NewProposal:
    """A proposal about to be written."""

    params: dict[str, Any]
    strategy: str
    candidate_idx: int | None = None
    predictions: dict[str, Any] = field(default_factory=dict)
    acq_value: float | None = None


@dataclass(frozen=True)
class NewMeasurement:
    """A validated measurement about to be written."""

    params: dict[str, Any]
    values: dict[str, float]
    idempotency_key: str
    proposal_id: int | None = None
    candidate_idx: int | None = None
    stds: dict[str, float] = field(default_factory=dict)
    source: str = "experiment"
    provenance: dict[str, Any] = field(default_factory=dict)
    measured_at: datetime | None = None
