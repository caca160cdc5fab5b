"""The simulator protocol and its registry.

A simulator is an oracle that turns proposed parameters into measurements, so a campaign can be
run end to end without a lab: for demos, tests and planner benchmarks. Each kind registers under
a name with `register_simulator`; a campaign spec picks one by that name in its `[simulator]`
table, and `make_simulator` builds it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from loop.errors import LoopError

if TYPE_CHECKING:
    import numpy as np

    from loop.spec import CampaignSpec

__all__ = ["Simulator", "SIMULATORS", "register_simulator", "make_simulator"]


class Simulator(ABC):
    """An oracle that answers proposals with measured values.

    Subclasses implement `measure` and `from_options`, and may implement `candidates` when they
    only know a finite set of inputs.
    """

    #: The registry name, set by `register_simulator`.
    name: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        spec: CampaignSpec | None = None,
        base_dir: Path | None = None,
    ) -> Simulator:
        """Build the simulator from the `options` table of a spec's `[simulator]`.

        Args:
            options: The simulator's options, as written in the spec.
            spec: The campaign the simulator serves, used to check the options against its
                parameters and outcomes (`None` skips those checks).
            base_dir: Folder that relative paths in the options are resolved against (the
                folder of the spec file); `None` means the working directory.

        Raises:
            LoopError: If an option is missing, unknown or invalid.
        """

    @abstractmethod
    def measure(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        """Measure one proposal.

        Args:
            params: Parameter values keyed by parameter name.
            rng: Source of all randomness (measurement noise, replicate choice), so runs are
                reproducible from a seed.

        Returns:
            Values keyed by the campaign's objective and constraint names.

        Raises:
            LoopError: If the simulator cannot measure `params`.
        """

    def candidates(self) -> list[dict[str, Any]] | None:
        """The inputs the simulator knows, or `None` if it answers any point of the space.

        Returns:
            One dict per distinct input, keyed by parameter name, or `None`.
        """
        return None


_S = TypeVar("_S", bound=type[Simulator])

#: Simulator classes by registry name; filled at import time by `register_simulator` only.
SIMULATORS: dict[str, type[Simulator]] = {}


def register_simulator(name: str) -> Callable[[_S], _S]:
    """Class decorator that registers a `Simulator` subclass under `name`.

    Args:
        name: The name a spec uses in `[simulator] name = ...`.

    Returns:
        A decorator that records the class and returns it unchanged.

    Raises:
        LoopError: If `name` is already taken by another class.
    """

    def decorate(cls: _S) -> _S:
        if name in SIMULATORS and SIMULATORS[name] is not cls:
            raise LoopError(
                f"simulator name '{name}' is registered twice ({SIMULATORS[name].__qualname__} "
                f"and {cls.__qualname__})",
                "give each simulator class its own name",
            )
        cls.name = name
        SIMULATORS[name] = cls
        return cls

    return decorate


def make_simulator(spec: CampaignSpec, base_dir: Path | None = None) -> Simulator:
    """Build the simulator a campaign spec names.

    Args:
        spec: The campaign; its `simulator` table gives the name and options.
        base_dir: Folder of the spec file, against which relative paths are resolved; `None`
            means the working directory.

    Returns:
        The simulator, ready to `measure`.

    Raises:
        LoopError: If the spec has no simulator, names an unknown one, or its options are
            invalid.
    """
    if spec.simulator is None:
        raise LoopError(
            f"campaign '{spec.name}' has no simulator",
            'add a [simulator] table to the spec (for example name = "dataset"), or measure '
            "the proposals yourself and ingest the results",
        )
    name = spec.simulator.name
    cls = SIMULATORS.get(name)
    if cls is None:
        known = ", ".join(sorted(SIMULATORS)) or "(none)"
        raise LoopError(
            f"unknown simulator '{name}' in campaign '{spec.name}'; known simulators: {known}",
            f"set [simulator] name to one of: {known}",
        )
    return cls.from_options(spec.simulator.options, spec=spec, base_dir=base_dir)
