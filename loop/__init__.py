"""loop: an active-learning, closed-loop experiment planner for materials science.

Importing `loop` is cheap; torch and BoTorch load only when a model is fitted.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
