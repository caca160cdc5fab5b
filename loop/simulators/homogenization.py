"""The homogenization oracle: generate a microstructure from a proposal, return its effective
properties.

A campaign over generator parameters (volume fraction, correlation lengths, orientation) names
`[simulator] name = "homogenization"`. For each proposal the simulator draws a periodic
thresholded Gaussian random field with those parameters (`loop.microgen`), solves the periodic
cell problem with the FFT-accelerated finite-element scheme of `loop.homogenize`, and answers
the campaign's outcomes from the effective stiffness or conductivity.

Options (all optional except where an outcome needs them):

- `size` (16): voxels per axis; `dim` (3): 2 or 3.
- `phases`: two tables `{ youngs_modulus, poisson_ratio, conductivity, density }`, phase 0 (the
  matrix) first; default E = 1 and 10, nu = 0.3, k = 1 and 10, density 1 and 1.
- `parameters`: generator field -> campaign parameter name, for the fields `volume_fraction`,
  `length` (every axis), `length_x`, `length_y`, `length_z`, `angle` (degrees), `seed`; a field
  named like a campaign parameter is mapped without being listed.
- `fixed`: values of generator fields that are not campaign parameters (defaults:
  volume_fraction 0.4, length 2.0 voxels, angle 0).
- `realizations` (1): random fields averaged per proposal; their seeds come from the run's
  random generator unless `seed` is a parameter or fixed.
- `outputs`: outcome name -> quantity. Quantities: `C11` ... `C66` (Mandel components, 1-based,
  ordered 11 22 33 12 23 13), `E_x`, `E_y`, `E_z` (directional Young's moduli), `bulk`, `shear`
  (Hill averages, 3-D), `k_xx`, `k_yy`, `k_zz`, `k_mean` (conductivity), `volume_fraction`,
  `density`, and `specific_<q>` = q / density for any of the moduli or conductivities.
- `device` ("cpu"), `tol` (1e-6).

In a `[microstructures]` campaign the proposal is an image of the campaign's stack, and in a
`[latent]` campaign the proposal carries its GAN-decoded 2-D image: the simulator homogenizes that
image as it is (`size`, `dim`, `parameters`, `fixed` and `realizations` do not apply).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loop.errors import LoopError
from loop.homogenize import Phase, engineering_constants, homogenize
from loop.microgen import GRFParams, microstructure
from loop.simulators.base import Simulator, register_simulator

if TYPE_CHECKING:
    from loop.spec import CampaignSpec

__all__ = ["HomogenizationSimulator", "FIELDS", "quantity_names"]

FIELDS = ("volume_fraction", "length", "length_x", "length_y", "length_z", "angle", "seed")
_DEFAULT_FIXED = {"volume_fraction": 0.4, "length": 2.0, "angle": 0.0}
_OPTION_KEYS = (
    "size",
    "dim",
    "phases",
    "parameters",
    "fixed",
    "realizations",
    "outputs",
    "device",
    "tol",
)
_PHASE_KEYS = ("youngs_modulus", "poisson_ratio", "conductivity", "density")
_CIJ = re.compile(r"C([1-6])([1-6])")


def quantity_names(dim: int) -> list[str]:
    """Every quantity the simulator computes for `dim`-D images."""
    s = 6 if dim == 3 else 3
    axes = "xyz"[:dim]
    moduli = [f"E_{a}" for a in axes] + (["bulk", "shear"] if dim == 3 else [])
    cond = [f"k_{a}{a}" for a in axes] + ["k_mean"]
    cij = [f"C{i}{j}" for i in range(1, s + 1) for j in range(1, s + 1)]
    return (
        cij
        + moduli
        + cond
        + ["volume_fraction", "density"]
        + [f"specific_{q}" for q in [*cij, *moduli, *cond]]
    )


def _bad(msg: str, fix: str) -> LoopError:
    return LoopError(f"homogenization simulator: {msg}", fix)


def _phases(value: Any) -> tuple[tuple[Phase, Phase], tuple[float, float]]:
    if value is None:
        return (Phase(1.0, 0.3, 1.0), Phase(10.0, 0.3, 10.0)), (1.0, 1.0)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, Mapping) for v in value)
    ):
        raise _bad(
            f"option 'phases' must be a list of two tables, got {value!r}",
            "write phases = [{ youngs_modulus = 1, poisson_ratio = 0.3 }, "
            "{ youngs_modulus = 10, poisson_ratio = 0.3 }]",
        )
    out, dens = [], []
    for i, table in enumerate(value):
        unknown = sorted(set(table) - set(_PHASE_KEYS))
        if unknown:
            raise _bad(
                f"phase {i} has unknown key(s) {unknown}", f"allowed: {', '.join(_PHASE_KEYS)}"
            )
        for k, v in table.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise _bad(f"phase {i} {k} = {v!r} is not a number", f"give {k} as a number")
        p = Phase(
            float(table.get("youngs_modulus", 1.0)),
            float(table.get("poisson_ratio", 0.3)),
            float(table.get("conductivity", 1.0)),
        )
        p.check(f"homogenization simulator phase {i}")
        d = float(table.get("density", 1.0))
        if d <= 0:
            raise _bad(f"phase {i} density = {d} must be positive", "give a positive density")
        out.append(p)
        dens.append(d)
    return (out[0], out[1]), (dens[0], dens[1])


class HomogenizationSimulator(Simulator):
    """Generates the proposed microstructure and homogenizes it (see the module docstring)."""

    def __init__(
        self,
        *,
        size: int = 16,
        dim: int = 3,
        phases: tuple[Phase, Phase] | None = None,
        densities: tuple[float, float] = (1.0, 1.0),
        parameters: Mapping[str, str] | None = None,
        fixed: Mapping[str, float] | None = None,
        realizations: int = 1,
        outputs: Mapping[str, str] | None = None,
        device: str = "cpu",
        tol: float = 1e-6,
        pool: tuple[str, str, str] | None = None,
        image_key: str | None = None,
    ) -> None:
        if dim not in (2, 3):
            raise _bad(f"dim = {dim!r} must be 2 or 3", "set dim = 2 or dim = 3")
        if not isinstance(size, int) or isinstance(size, bool) or not 4 <= size <= 256:
            raise _bad(f"size = {size!r} must be a whole number of voxels in 4..256", "e.g. 16")
        if not isinstance(realizations, int) or realizations < 1:
            raise _bad(f"realizations = {realizations!r} must be >= 1", "e.g. realizations = 2")
        if not (isinstance(tol, float | int) and 0 < tol < 1):
            raise _bad(f"tol = {tol!r} must lie in (0, 1)", "e.g. tol = 1e-6")
        self.size, self.dim, self.realizations = size, dim, realizations
        self.phases = phases or (Phase(1.0, 0.3, 1.0), Phase(10.0, 0.3, 10.0))
        self.densities = densities
        self.parameters = dict(parameters or {})
        unknown = sorted(set(self.parameters) - set(FIELDS))
        if unknown:
            raise _bad(
                f"option 'parameters' maps unknown generator field(s) {unknown}",
                f"generator fields: {', '.join(FIELDS)}",
            )
        fx = dict(fixed or {})
        unknown = sorted(set(fx) - set(FIELDS))
        if unknown:
            raise _bad(
                f"option 'fixed' names unknown generator field(s) {unknown}",
                f"generator fields: {', '.join(FIELDS)}",
            )
        self.fixed = {**_DEFAULT_FIXED, **fx}
        known = set(quantity_names(dim))
        default = "E_z" if dim == 3 else "E_y"
        self.outputs = dict(outputs or {default: default})
        bad = {k: v for k, v in self.outputs.items() if v not in known}
        if bad:
            raise _bad(
                f"outputs {bad} name quantities it does not compute in {dim}-D",
                "use C11..C66, E_x, E_y, E_z, bulk, shear, k_xx, k_yy, k_zz, k_mean, "
                "volume_fraction, density or specific_<modulus>",
            )
        self.device, self.tol = device, float(tol)
        #: (path, key, parameter name) of a [microstructures] campaign's image stack
        self.pool = pool
        self._stack: np.ndarray | None = None
        #: the params key of a [latent] proposal's packed image
        self.image_key = image_key

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        spec: CampaignSpec | None = None,
        base_dir: Path | None = None,
    ) -> HomogenizationSimulator:
        """Build from `[simulator] options`; with a spec, check every outcome is served and
        every mapped parameter exists.

        Raises:
            LoopError: An unknown or invalid option, an unserved outcome or a missing parameter.
        """
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise _bad(f"unknown option(s) {unknown}", f"allowed: {', '.join(_OPTION_KEYS)}")
        phases, dens = _phases(options.get("phases"))
        params = dict(options.get("parameters") or {})
        outputs = options.get("outputs")
        if isinstance(outputs, list):
            outputs = {q: q for q in outputs}
        if outputs is not None and not isinstance(outputs, Mapping):
            raise _bad(
                f"option 'outputs' must map outcome names to quantities, got {outputs!r}",
                'write e.g. outputs = { stiffness = "E_z" }',
            )
        dim = options.get("dim", 3)
        pool = None
        image_key = None
        if spec is not None and spec.latent is not None:
            image_key = spec.latent.image
            dim = 2
        if spec is not None and spec.microstructures is not None:
            ms = spec.microstructures
            pool = (ms.path, ms.key, ms.name)
            from loop.microgen import load_images

            dim = load_images(ms.path, ms.key).ndim - 1
        if spec is not None:
            names = {p.name for p in spec.parameters}
            for f in FIELDS:
                if f not in params and f in names:
                    params[f] = f
            missing = sorted(v for v in params.values() if v not in names)
            if missing:
                raise _bad(
                    f"option 'parameters' names {missing}, which campaign '{spec.name}' does not "
                    f"have ({', '.join(sorted(names))})",
                    "map generator fields to the campaign's parameter names",
                )
            table = dict(outputs or {})
            known = set(quantity_names(dim if dim in (2, 3) else 3))
            for name in spec.outcome_names:
                if name not in table and name in known:
                    table[name] = name
            unserved = [n for n in spec.outcome_names if n not in table]
            if unserved:
                raise _bad(
                    f"cannot answer {unserved} of campaign '{spec.name}'",
                    f'map each outcome to a quantity, e.g. outputs = {{ {unserved[0]} = "E_z" }}',
                )
            outputs = table
        return cls(
            size=options.get("size", 16),
            dim=dim,
            phases=phases,
            densities=dens,
            parameters=params,
            fixed=options.get("fixed"),
            realizations=options.get("realizations", 1),
            outputs=outputs,
            device=options.get("device", "cpu"),
            tol=options.get("tol", 1e-6),
            pool=pool,
            image_key=image_key,
        )

    def generator_params(self, params: Mapping[str, Any], seed: int) -> GRFParams:
        """The random-field parameters of a proposal."""
        values = dict(self.fixed)
        for field_name, pname in self.parameters.items():
            if pname not in params:
                raise _bad(
                    f"the proposal has no parameter {pname!r} (generator field {field_name})",
                    "measure proposals of the campaign this simulator was built for",
                )
            values[field_name] = params[pname]
        try:
            base = float(values["length"])
            lengths = tuple(float(values.get(f"length_{a}", base)) for a in "xyz"[: self.dim])
            return GRFParams(
                volume_fraction=float(values["volume_fraction"]),
                lengths=lengths,
                angle=float(values.get("angle", 0.0)),
                seed=int(values["seed"]) if "seed" in values else seed,
            )
        except (TypeError, ValueError) as err:
            raise _bad(
                f"a generator parameter is not a number ({err})", "check the proposal"
            ) from None

    def image(self, params: Mapping[str, Any], seed: int) -> np.ndarray:
        """The binary microstructure of a proposal for one random seed."""
        return microstructure((self.size,) * self.dim, self.generator_params(params, seed))

    def properties(self, image: np.ndarray) -> dict[str, float]:
        """Every quantity the outputs need, for one image."""
        wanted = set(self.outputs.values())
        base = {q.removeprefix("specific_") for q in wanted}
        out: dict[str, float] = {}
        vf = float(np.mean(image))
        out["volume_fraction"] = vf
        out["density"] = (1 - vf) * self.densities[0] + vf * self.densities[1]
        if any(_CIJ.fullmatch(q) or q.startswith("E_") or q in ("bulk", "shear") for q in base):
            c = homogenize(image, self.phases, "elastic", tol=self.tol, device=self.device).tensor
            for i in range(c.shape[0]):
                for j in range(c.shape[0]):
                    out[f"C{i + 1}{j + 1}"] = float(c[i, j])
            out.update(engineering_constants(c))
        if any(q.startswith("k_") for q in base):
            k = homogenize(image, self.phases, "thermal", tol=self.tol, device=self.device).tensor
            for i, a in enumerate("xyz"[: self.dim]):
                out[f"k_{a}{a}"] = float(k[i, i])
            out["k_mean"] = float(np.trace(k) / self.dim)
        for q in wanted:
            if q.startswith("specific_"):
                out[q] = out[q.removeprefix("specific_")] / out["density"]
        return out

    def pool_image(self, params: Mapping[str, Any]) -> np.ndarray:
        """The stack image a `[microstructures]` proposal names."""
        from loop.microgen import load_images

        assert self.pool is not None
        path, key, name = self.pool
        if self._stack is None:
            self._stack = load_images(path, key)
        try:
            idx = int(params[name])
        except (KeyError, TypeError, ValueError):
            raise _bad(
                f"the proposal has no image index {name!r} (got {dict(params)!r})",
                "measure proposals of the campaign this simulator was built for",
            ) from None
        if not 0 <= idx < len(self._stack):
            raise _bad(
                f"image {idx} is not in the stack of {len(self._stack)} images ({path})",
                "measure proposals of the campaign this simulator was built for",
            )
        return self._stack[idx]

    def measure(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        """Homogenize the proposal's image (a `[microstructures]` campaign), or generate
        `realizations` microstructures from its parameters and average their answers."""
        if self.pool is not None or self.image_key is not None:
            if self.pool is not None:
                img = self.pool_image(params)
            else:
                from loop.microgen import unpack_image

                assert self.image_key is not None
                if self.image_key not in params:
                    raise _bad(
                        f"the proposal carries no decoded image under {self.image_key!r}",
                        "measure proposals of a [latent] campaign, which carry their image",
                    )
                img = unpack_image(params[self.image_key])
            props = self.properties(img)
            return {name: float(props[q]) for name, q in self.outputs.items()}
        runs = []
        for _ in range(self.realizations):
            seed = int(rng.integers(0, 2**31 - 1))
            runs.append(self.properties(self.image(params, seed)))
        return {name: float(np.mean([r[q] for r in runs])) for name, q in self.outputs.items()}


register_simulator("homogenization")(HomogenizationSimulator)
