"""Surrogate models with calibrated uncertainty, exposed as BoTorch models.

Importing this package is cheap; `load_builtin()` imports the families (and torch).
"""

from __future__ import annotations

from surrogates.base import (
    SURROGATES,
    FitResult,
    Surrogate,
    UnknownSurrogateError,
    make_surrogate,
    register_surrogate,
)

__all__ = [
    "SURROGATES",
    "FitResult",
    "Surrogate",
    "UnknownSurrogateError",
    "make_surrogate",
    "register_surrogate",
    "load_builtin",
]


def load_builtin() -> None:
    """Import the built-in families so they register themselves."""
    import surrogates.gp  # noqa: F401
    import surrogates.neural  # noqa: F401
