"""The planner as an HTTP service (`loop serve`)."""

from __future__ import annotations

from loop.service.app import DEFAULT_MAX_BODY, create_app

__all__ = ["create_app", "DEFAULT_MAX_BODY"]
