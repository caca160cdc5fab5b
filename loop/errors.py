"""The one error hierarchy of `loop`: every user-facing failure is a `LoopError`."""

from __future__ import annotations

__all__ = [
    "LoopError",
    "SpecError",
    "IngestError",
    "NotFoundError",
    "ConflictError",
    "BudgetError",
]


class LoopError(Exception):
    """A failure a user can act on.

    Args:
        message: What went wrong, naming the value and the limit.
        hint: How to fix it.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class SpecError(LoopError):
    """A campaign spec is invalid."""


class IngestError(LoopError):
    """A submission of measurements is invalid; nothing was stored.

    Attributes:
        problems: One line per bad row and field, each naming the file, row and column.
    """

    def __init__(self, message: str, hint: str = "", problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = list(problems or [])

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"  - {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"  ... and {len(self.problems) - 20} more")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class NotFoundError(LoopError):
    """A campaign, proposal or record does not exist."""


class ConflictError(LoopError):
    """The request contradicts what is stored (a second result, a duplicate name)."""


class BudgetError(LoopError):
    """The campaign cannot propose: budget spent, target reached or pool exhausted."""
