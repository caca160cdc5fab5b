"""The campaign store: SQLAlchemy ORM, sessions and data access functions."""

from __future__ import annotations

from db import crud
from db.records import (
    CampaignRecord,
    EventRecord,
    MeasurementRecord,
    ModelFitRecord,
    NewMeasurement,
    NewProposal,
    ProposalRecord,
)
from db.session import DEFAULT_URL, Store, open_store, resolve_url

__all__ = [
    "crud",
    "CampaignRecord",
    "EventRecord",
    "MeasurementRecord",
    "ModelFitRecord",
    "NewMeasurement",
    "NewProposal",
    "ProposalRecord",
    "DEFAULT_URL",
    "Store",
    "open_store",
    "resolve_url",
]
