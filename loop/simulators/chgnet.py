"""The CHGNet oracle: a pretrained universal interatomic potential as a crystal simulator.

A `[structures]` campaign proposes crystals; each proposal carries the structure's CIF. This
simulator parses the CIF with pymatgen and evaluates it with CHGNet (Deng et al. 2023, Nat.
Mach. Intell. 5, 1031), either as given (`mode = "static"`) or after a short relaxation of the
positions and the cell (`mode = "relax"`). It answers the campaign's outcomes from three
quantities: `energy_per_atom` (eV/atom, CHGNet's prediction), `energy` (eV per cell) and, given
elemental reference energies, `formation_energy_per_atom` (eV/atom).

CHGNet is an optional extra: `pip install 'loop-planner[chgnet]'`. Its pretrained weights ship
inside the package, so no download is needed.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from loop.errors import LoopError
from loop.simulators.base import Simulator, register_simulator

if TYPE_CHECKING:
    import numpy as np

    from loop.spec import CampaignSpec

__all__ = [
    "CHGNET_EXTRA",
    "QUANTITIES",
    "CHGNetOptions",
    "CHGNetSimulator",
    "Quantity",
    "load_chgnet",
]

#: The pip extra that installs CHGNet.
CHGNET_EXTRA = "loop-planner[chgnet]"

#: What the simulator can compute, each answerable under any outcome name.
Quantity = Literal["energy_per_atom", "energy", "formation_energy_per_atom"]
QUANTITIES: tuple[str, ...] = get_args(Quantity)

#: The pretrained checkpoints shipped inside the chgnet package.
ModelName = Literal["0.3.0", "0.2.0", "r2scan"]

_OPTION_KEYS = (
    "mode",
    "steps",
    "fmax",
    "device",
    "model",
    "relax_cell",
    "references",
    "outputs",
)

_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


def _require_chgnet() -> Any:
    """The `chgnet.model` module, or a LoopError naming the extra to install."""
    try:
        import chgnet.model
    except ImportError as err:
        raise LoopError(
            f"the chgnet simulator needs the chgnet package, which is not installed ({err})",
            f"pip install '{CHGNET_EXTRA}'",
        ) from None
    return chgnet.model


def load_chgnet(model: str = "0.3.0", device: str = "cpu") -> Any:
    """The pretrained CHGNet model, loaded once per process, checkpoint and device.

    The cache is the point: a worker measures many proposals, and loading the model for each
    would cost more than a static prediction.

    Args:
        model: Checkpoint shipped with chgnet: `"0.3.0"`, `"0.2.0"` or `"r2scan"`.
        device: Torch device, e.g. `"cpu"` or `"cuda:0"`.

    Returns:
        A `chgnet.model.CHGNet` in evaluation mode on `device`, shared by all callers.

    Raises:
        LoopError: If chgnet is not installed or the device is not available.
    """
    # positional, so that defaulted and spelled-out arguments share one cache entry
    return _load_chgnet(model, device)


@functools.lru_cache(maxsize=4)
def _load_chgnet(model: str, device: str) -> Any:
    module = _require_chgnet()
    _check_device_available(device)
    # CHGNet prints its parameter count on construction; keep it out of the CLI's output
    with contextlib.redirect_stdout(io.StringIO()):
        net = module.CHGNet.load(model_name=model, use_device=device, verbose=False)
    return net.eval()


def _check_device_available(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LoopError(
            f"the chgnet simulator is set to device = {device!r}, but torch sees no CUDA GPU",
            'set device = "cpu" in [simulator] options, or run on a machine with a GPU',
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise LoopError(
            "the chgnet simulator is set to device = 'mps', but torch sees no Apple GPU",
            'set device = "cpu" in [simulator] options',
        )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _references(value: Any) -> dict[str, float]:
    from pymatgen.core.periodic_table import Element

    if not isinstance(value, Mapping):
        raise LoopError(
            f"chgnet simulator option 'references' must be a table of element -> energy per "
            f"atom (eV/atom), got {value!r}",
            "write for example references = { Sr = -1.69, Ti = -7.83, O = -4.95 }",
        )
    bad_el = sorted(str(k) for k in value if not Element.is_valid_symbol(str(k)))
    if bad_el:
        raise LoopError(
            f"chgnet simulator option 'references' names {bad_el}, which are not element symbols",
            "key the references by element symbol, e.g. Fe, O",
        )
    bad_v = {k: v for k, v in value.items() if not _is_number(v)}
    if bad_v:
        raise LoopError(
            f"chgnet simulator option 'references' must give finite numbers (eV/atom); got "
            f"{bad_v!r}",
            "give each element's reference energy per atom as a number",
        )
    return {str(k): float(v) for k, v in value.items()}


def _outputs(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        value = {q: q for q in value}
    if not isinstance(value, Mapping):
        raise LoopError(
            f"chgnet simulator option 'outputs' must be a table of outcome name -> quantity, "
            f"got {value!r}",
            'write for example outputs = { stability = "formation_energy_per_atom" }',
        )
    bad = {k: v for k, v in value.items() if not isinstance(k, str) or v not in QUANTITIES}
    if bad:
        raise LoopError(
            f"chgnet simulator option 'outputs' maps {bad!r}, but the simulator computes only "
            f"{', '.join(QUANTITIES)}",
            "map each outcome name to one of those quantities",
        )
    return dict(value)


@dataclass(frozen=True)
class CHGNetOptions:
    """Options of the CHGNet oracle.

    Attributes:
        mode: `"static"` predicts the structure as given; `"relax"` first relaxes it with FIRE.
        steps: Relaxation step budget (`"relax"` only).
        fmax: Relaxation stops once every force is below this, in eV/A (`"relax"` only).
        device: Torch device the model runs on.
        model: Pretrained checkpoint: `"0.3.0"` (MPtrj, the default), `"0.2.0"` or `"r2scan"`.
        relax_cell: Whether the relaxation also changes the cell, or only the positions.
        references: Element symbol -> energy per atom of its elemental reference (eV/atom),
            for `formation_energy_per_atom`. Compute them with the same model and mode.
        outputs: Outcome name -> quantity. Outcomes not listed that are named like a quantity
            get that quantity.
    """

    mode: Literal["static", "relax"] = "static"
    steps: int = 50
    fmax: float = 0.1
    device: str = "cpu"
    model: ModelName = "0.3.0"
    relax_cell: bool = True
    references: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("static", "relax"):
            raise LoopError(
                f"chgnet simulator option mode = {self.mode!r} is not known",
                'set mode = "static" (the structure as given) or "relax"',
            )
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise LoopError(
                f"chgnet simulator option steps = {self.steps!r} must be a whole number >= 1",
                "set steps to the relaxation step budget, e.g. steps = 50",
            )
        if not _is_number(self.fmax) or self.fmax <= 0:
            raise LoopError(
                f"chgnet simulator option fmax = {self.fmax!r} must be a number > 0 (eV/A)",
                "set e.g. fmax = 0.1",
            )
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise LoopError(
                f"chgnet simulator option device = {self.device!r} is not a torch device",
                'set device = "cpu", "cuda", "cuda:N" or "mps"',
            )
        if self.model not in get_args(ModelName):
            raise LoopError(
                f"chgnet simulator option model = {self.model!r} is not a pretrained CHGNet",
                f"set model to one of: {', '.join(get_args(ModelName))}",
            )
        if not isinstance(self.relax_cell, bool):
            raise LoopError(
                f"chgnet simulator option relax_cell = {self.relax_cell!r} must be true or false",
                "write relax_cell = true or relax_cell = false",
            )
        object.__setattr__(self, "references", _references(self.references))
        object.__setattr__(self, "outputs", _outputs(self.outputs))
        if "formation_energy_per_atom" in self.outputs.values() and not self.references:
            raise LoopError(
                "the chgnet simulator is asked for formation_energy_per_atom but has no "
                "elemental reference energies",
                "add references = { El = energy per atom, ... } to [simulator] options, one "
                "per element of the pool",
            )

    @property
    def quantities(self) -> tuple[str, ...]:
        """The quantities these options can compute."""
        return QUANTITIES if self.references else QUANTITIES[:2]


@register_simulator("chgnet")
class CHGNetSimulator(Simulator):
    """Evaluates proposed crystals with the pretrained CHGNet potential.

    Proposals must carry the structure's CIF under `"cif"`, as `[structures]` campaigns do.
    The answer is deterministic, so `measure` ignores its `rng`. Torch and BLAS use every core
    by default; when several workers share a machine, `OMP_NUM_THREADS=1` per worker avoids
    them stalling each other.

    Args:
        options: Mode, relaxation settings, device, references and output names.

    Raises:
        LoopError: If chgnet is not installed or the device is not available.
    """

    def __init__(self, options: CHGNetOptions) -> None:
        self.options = options
        self.outputs = dict(options.outputs) or {q: q for q in options.quantities}
        self._model = load_chgnet(options.model, options.device)
        self._optimizer: Any = None
        if options.mode == "relax":
            module = _require_chgnet()
            # the calculator announces its device on stdout, and resets the shared model's
            # isolated-atom response to its own argument, which must stay "error"
            with contextlib.redirect_stdout(io.StringIO()):
                self._optimizer = module.StructOptimizer(
                    model=self._model, use_device=options.device, on_isolated_atoms="error"
                )

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        spec: CampaignSpec | None = None,
        base_dir: Path | None = None,
    ) -> CHGNetSimulator:
        """Build the oracle from a spec's `[simulator] options`.

        With a spec, the campaign must be a `[structures]` one, and every objective and
        constraint must be served: mapped in `outputs`, or named like a quantity.

        Args:
            options: `mode`, `steps`, `fmax`, `device`, `model`, `relax_cell`, `references`,
                `outputs`.
            spec: The campaign the oracle serves, or `None`.
            base_dir: Unused (the options name no files).

        Returns:
            The oracle, with its model loaded.

        Raises:
            LoopError: If an option is unknown or invalid, an outcome is not served, or chgnet
                is not installed.
        """
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise LoopError(
                f"unknown chgnet simulator option(s) {unknown}",
                f"allowed options: {', '.join(_OPTION_KEYS)}",
            )
        opts = dict(options)
        if spec is not None:
            opts["outputs"] = _serve(spec, opts.get("outputs", {}), opts.get("references"))
        return cls(CHGNetOptions(**opts))

    def measure(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        """Evaluate one proposed crystal.

        Args:
            params: The proposal; `params["cif"]` is the structure's CIF text.
            rng: Unused: CHGNet is deterministic.

        Returns:
            One value per outcome name in `outputs`.

        Raises:
            LoopError: If the CIF is missing, unreadable or disordered, CHGNet cannot evaluate
                the structure, or a reference energy is missing.
        """
        structure = _structure(params)
        n = len(structure)
        try:
            if self._optimizer is None:
                pred = self._model.predict_structure(structure, task="e")
                energy_per_atom = float(pred["e"])
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    result = self._optimizer.relax(
                        structure,
                        fmax=self.options.fmax,
                        steps=self.options.steps,
                        relax_cell=self.options.relax_cell,
                        verbose=False,
                        assign_magmoms=False,
                    )
                # the calculator's energy is per cell; the last entry is the final structure's
                energy_per_atom = float(result["trajectory"].energies[-1]) / n
        except (ValueError, RuntimeError) as err:
            raise LoopError(
                f"CHGNet cannot evaluate {_name(params, structure)} ({err})",
                "check the structure: CHGNet needs every atom within 6 A of another",
            ) from None
        if not math.isfinite(energy_per_atom):
            raise LoopError(
                f"CHGNet predicted a non-finite energy ({energy_per_atom}) for "
                f"{_name(params, structure)}",
                "check the structure for overlapping atoms",
            )
        values = {"energy_per_atom": energy_per_atom, "energy": energy_per_atom * n}
        if "formation_energy_per_atom" in self.outputs.values():
            values["formation_energy_per_atom"] = self._formation(
                energy_per_atom, structure, params
            )
        return {name: values[q] for name, q in self.outputs.items()}

    def _formation(
        self, energy_per_atom: float, structure: Any, params: Mapping[str, Any]
    ) -> float:
        comp = structure.composition.element_composition
        refs = self.options.references
        missing = sorted(el.symbol for el in comp if el.symbol not in refs)
        if missing:
            raise LoopError(
                f"the chgnet simulator has no reference energy for {missing} in "
                f"{_name(params, structure)}",
                "add those elements to references in [simulator] options",
            )
        n = comp.num_atoms
        return energy_per_atom - sum(amt / n * refs[el.symbol] for el, amt in comp.items())


def _serve(spec: CampaignSpec, outputs: Any, references: Any) -> dict[str, str]:
    """The `outputs` table completed from the campaign's outcome names, checked to serve them
    all."""
    if spec.structures is None:
        raise LoopError(
            f"the chgnet simulator evaluates crystal structures, but campaign '{spec.name}' has "
            "no [structures] pool",
            "give the campaign a [structures] table, or use another simulator",
        )
    table = _outputs(outputs)
    # a [hull] campaign's stability outcome is computed at ingest from the energy column
    hull = spec.hull
    names = [
        hull.energy if hull is not None and n == hull.objective else n for n in spec.outcome_names
    ]
    stray = sorted(set(table) - set(names))
    if stray:
        raise LoopError(
            f"the chgnet simulator's outputs name {stray}, which are not objectives or "
            f"constraints of campaign '{spec.name}' ({', '.join(names)})",
            "key outputs by the campaign's outcome names",
        )
    computable = QUANTITIES if references else QUANTITIES[:2]
    for name in names:
        if name not in table and name in computable:
            table[name] = name
    unserved = [n for n in names if n not in table]
    if unserved:
        raise LoopError(
            f"the chgnet simulator cannot answer {unserved} of campaign '{spec.name}'; it "
            f"computes {', '.join(computable)}"
            + ("" if references else " (and formation_energy_per_atom, given references)"),
            "map each outcome to a quantity in [simulator] options, e.g. outputs = { "
            f'{unserved[0]} = "energy_per_atom" }}',
        )
    return {n: table[n] for n in names}


def _name(params: Mapping[str, Any], structure: Any = None) -> str:
    """How messages name a proposal: its id and formula where known."""
    label = params.get("formula") or (
        structure.composition.reduced_formula if structure is not None else None
    )
    ident = params.get("id")
    parts = [f"structure {ident!r}" if ident is not None else "the structure"]
    if label:
        parts.append(f"({label})")
    return " ".join(parts)


def _structure(params: Mapping[str, Any]) -> Any:
    """The ordered pymatgen `Structure` of a proposal's CIF."""
    from loop.structpool import parse_cif

    cif = params.get("cif")
    if not isinstance(cif, str) or not cif.strip():
        raise LoopError(
            f"the chgnet simulator needs the structure's CIF text under 'cif'; {_name(params)} "
            f"has {'no cif' if cif is None else repr(cif)[:60]}",
            "use it with a [structures] campaign, whose proposals carry the CIF",
        )
    try:
        structure = parse_cif(cif)
    except ValueError as err:
        raise LoopError(
            f"the CIF of {_name(params)} cannot be read: {err}",
            "fix the CIF text in the pool file",
        ) from None
    if len(structure) == 0:
        raise LoopError(f"the CIF of {_name(params)} holds no sites", "fix the CIF text")
    if not structure.is_ordered:
        raise LoopError(
            f"{_name(params, structure)} is disordered (partial occupancies, "
            f"{structure.composition.formula}); CHGNet needs one species per site",
            "order it first (e.g. pymatgen OrderDisorderedStructureTransformation)",
        )
    return structure
