"""Alembic environment and revisions of the campaign store, shipped in the wheel."""

from __future__ import annotations

from pathlib import Path

__all__ = ["HEAD", "SCRIPT_LOCATION"]

#: Directory Alembic reads the environment and revisions from.
SCRIPT_LOCATION = str(Path(__file__).resolve().parent)

#: The newest revision; a test checks it against Alembic's own view of the head.
HEAD = "0002"
