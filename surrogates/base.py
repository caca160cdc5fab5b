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
        heldout_mean: `k x m` predictive means of training points the model did not train on
            (cross-validated, out-of-fold or a validation split), calibrated.
        heldout_std: `k x m` predictive standard deviations of the same points, calibrated.
        state: Everything needed to rebuild the model (`state_dict` and constructor arguments);
            tensors only, so it loads with `torch.load(..., weights_only=True)`.
        info: Free-form fit details (time, epochs, `sigma_scale`, device).
        heldout_index: `k` row indices into the training data of the held-out predictions, or
            `None` when every row has one (`k = n`, in order).
    """

    model: Model
    heldout_mean: torch.Tensor
    heldout_std: torch.Tensor
    state: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    heldout_index: torch.Tensor | None = None


class Surrogate(ABC):
    """A family of models with calibrated uncertainty.

    Args:
        **options: Family-specific settings from the campaign spec's `surrogate_options`.
    """

    kind: str = ""
    #: Whether the family reads crystal structures (an index column into a pool whose graphs
    #: `set_structures` gives it) rather than plain vectors.
    needs_structures: bool = False
    #: Whether the surrogate reads voxel images through `set_images` (a `[microstructures]` pool).
    needs_images: bool = False

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)

    def set_structures(self, store: Any) -> None:
        """Give a structure family the pool's crystal graphs (a `GraphStore`), before `fit`."""
        raise UnknownSurrogateError(f"surrogate '{self.kind}' does not read crystal structures")

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
        warm_start: dict[str, Any] | None = None,
        input_names: list[str] | None = None,
        device: torch.device | str | None = None,
    ) -> FitResult:
        """Fit on `n x d` inputs `X` and `n x m` outputs `Y` (maximization sense).

        Args:
            bounds: `2 x d` bounds of the design space, for input scaling.
            Yvar: Optional `n x m` known observation noise variances.
            seed: Seed for everything random in the fit.
            state: A fit's `FitResult.state` for exactly these data: rebuild it, do not train.
            warm_start: An earlier fit's (or a pretrained model's) `FitResult.state` to start
                training from; families that cannot use it ignore it.
            input_names: The name of each of the `d` input columns (element symbols for
                composition models); families that do not need names ignore them.
            device: Where to train (`cuda` or `cpu`); `None` picks CUDA when present.
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
