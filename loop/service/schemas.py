"""Request bodies of the HTTP API (pydantic); responses are the CLI's `--json` documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CampaignCreate",
    "ProposeRequest",
    "IngestRequest",
    "ClaimRequest",
    "HeartbeatRequest",
    "CompleteRequest",
    "ReasonRequest",
    "TokenRequest",
    "ErrorBody",
]

_STRICT = ConfigDict(extra="forbid")

#: Ids and counts fit a 32-bit signed column.
_INT = Field(ge=1, le=2**31 - 1)


class CampaignCreate(BaseModel):
    """A campaign spec as JSON (the same keys as the TOML file); paths are the server's."""

    model_config = _STRICT
    spec: dict[str, Any]
    name: str | None = Field(default=None, min_length=1, max_length=200)


class ProposeRequest(BaseModel):
    model_config = _STRICT
    n: int | None = Field(default=None, ge=1, le=10_000)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class IngestRequest(BaseModel):
    """Rows as JSON objects (the columns of `loop ingest`), or the text of a CSV/JSONL file."""

    model_config = _STRICT
    rows: list[dict[str, Any]] | None = Field(default=None, max_length=100_000)
    text: str | None = None
    format: Literal["csv", "jsonl"] | None = None
    source: str = Field(default="experiment", min_length=1, max_length=100)


class ClaimRequest(BaseModel):
    model_config = _STRICT
    worker: str = Field(min_length=1, max_length=200)
    lease_seconds: float = Field(default=60.0, ge=1, le=86400)


class HeartbeatRequest(ClaimRequest):
    pass


class CompleteRequest(BaseModel):
    model_config = _STRICT
    values: dict[str, Any]
    stds: dict[str, Any] = Field(default_factory=dict)
    worker: str = Field(default="", max_length=200)
    source: str = Field(default="experiment", min_length=1, max_length=100)
    provenance: dict[str, str] = Field(default_factory=dict)


class ReasonRequest(BaseModel):
    model_config = _STRICT
    reason: str = Field(default="", max_length=2000)


class FailRequest(ReasonRequest):
    #: The worker that holds the job; when given, a job leased to anyone else is not touched
    #: (409), as for `loop worker`. Without it, an operator fails an open proposal by hand.
    worker: str = Field(default="", max_length=200)


class TokenRequest(BaseModel):
    model_config = _STRICT
    name: str = Field(default="", max_length=200)


class ErrorBody(BaseModel):
    """Every error the service returns: what went wrong and how to fix it."""

    error: str
    hint: str = ""
    problems: list[str] = Field(default_factory=list)
