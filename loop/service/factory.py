"""The app factory uvicorn calls in each server process of `loop serve --workers N`."""

from __future__ import annotations

import os

from fastapi import FastAPI

from db import open_store
from loop.service.app import DEFAULT_MAX_BODY, create_app

__all__ = ["app_from_env"]


def app_from_env() -> FastAPI:
    """Settings come from LOOP_DATABASE_URL, LOOP_ARTIFACT_DIR and LOOP_MAX_BODY."""
    store = open_store(os.environ.get("LOOP_DATABASE_URL"))
    return create_app(store, max_body=int(os.environ.get("LOOP_MAX_BODY", DEFAULT_MAX_BODY)))
