"""The `loop` command line (Typer). Commands are thin layers over the library functions."""

from __future__ import annotations

from loop.cli.app import app, main

__all__ = ["app", "main"]
