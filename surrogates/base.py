"""The surrogate interface and its registry.

A surrogate is fitted on tensors and returns a BoTorch `Model`; it knows nothing of campaigns or
the store. Families register themselves by name with `register_surrogate`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from botorch.models.model import Model

__all__ = [
    "Surrogate",
    "FitResult",
    "SURROGATES",
    "register_surrogate",
    "make_surrogate",
    "UnknownSurrogateError",
]


class UnknownSurrogateError(ValueError):
    """An unknown surrogate name or option (the engine turns it into a `LoopError`)."""


@dataclass
class FitResult:
    """A fitted model with what the store keeps about it.

    Attributes:
        model: The fitted BoTorch model over `n x d` inputs with `m` outputs.
        heldout_mean: `n x m` cross-validated predictive means of the training points.
        heldout_std: `n x m` cross-validated predictive standard deviations.
        state: Everything needed to rebuild the model (`state_dict` and constructor arguments).
        info: Free-form fit details (time, iterations, hyperparameters).
    """

    model: Model
    heldout_mean: torch.Tensor
    heldout_std: torch.Tensor
    state: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


class Surrogate(ABC):
    """A family of models with calibrated uncertainty.

    Args:
        **options: Family-specific settings from the campaign spec's `surrogate_options`.
    """

    kind: str = ""

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)

    @abstractmethod
    def fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        *,
        bounds: torch.Tensor,
        Yvar: torch.Tensor | None = None,
        seed: int = 0,
        state: dict[str, Any] | None = None,
    ) -> FitResult:
        """Fit on `n x d` inputs `X` and `n x m` outputs `Y` (maximization sense).

        Args:
            bounds: `2 x d` bounds of the design space, for input scaling.
            Yvar: Optional `n x m` known observation noise variances.
            seed: Seed for everything random in the fit.
            state: A previous fit's `FitResult.state` to start from (or reuse, if the data match).
        """

    def settings(self) -> dict[str, Any]:
        """The settings to store with a fit."""
        return {"kind": self.kind, **self.options}


SURROGATES: dict[str, type[Surrogate]] = {}


def register_surrogate(name: str) -> Callable[[type[Surrogate]], type[Surrogate]]:
    """Class decorator adding a surrogate family to the registry under `name`."""

    def deco(cls: type[Surrogate]) -> type[Surrogate]:
        if name in SURROGATES:
            raise ValueError(f"surrogate '{name}' is registered twice")
        cls.kind = name
        SURROGATES[name] = cls
        return cls

    return deco


def make_surrogate(name: str, options: dict[str, Any] | None = None) -> Surrogate:
    """Instantiate the surrogate family called `name`."""
    if name not in SURROGATES:
        raise UnknownSurrogateError(
            f"unknown surrogate '{name}'; known surrogates: {', '.join(sorted(SURROGATES))}"
        )
    return SURROGATES[name](**(options or {}))
