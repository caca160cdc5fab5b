"""Campaign specs: a TOML file validated with pydantic.

A spec names the design space (parameters, a candidate pool file, or a chemical space whose
compositions form the pool), the objectives, optional outcome constraints, the budget and stop
rule, and the surrogate and acquisition by name. Every problem is
reported as a `SpecError` naming the key and the fix.
"""

from __future__ import annotations

import math
import re
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loop.chemspace import ChemicalSpace, grid_units
from loop.errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "CampaignSpec",
    "FloatParameter",
    "IntParameter",
    "CategoricalParameter",
    "CompositionParameter",
    "Parameter",
    "PoolSpec",
    "ChemicalSpaceSpec",
    "StructureSpaceSpec",
    "SubstitutionSpec",
    "HullSpec",
    "STRUCTURE_SURROGATE",
    "MICROSTRUCTURE_SURROGATE",
    "MicrostructureSpaceSpec",
    "LatentSpaceSpec",
    "Objective",
    "OutcomeConstraint",
    "StopRule",
    "ModelSpec",
    "SimulatorSpec",
    "RESERVED_COLUMNS",
    "load_spec",
    "parse_spec",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")

#: Longest source name a measurement stores (the `source` column of the store).
MAX_SOURCE_NAME = 100

#: Column names that ingest and export give a meaning of their own.
RESERVED_COLUMNS = frozenset(
    {
        "measurement_id",
        "proposal_id",
        "replicate",
        "source",
        "operator",
        "instrument",
        "raw_sha256",
        "measured_at",
        "notes",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter or '_' and hold only letters, digits, "
            "'_', '.' or '-'"
        )
    return value


def _check_elements(v: list[str]) -> list[str]:
    from pymatgen.core.periodic_table import Element

    if len(v) < 2:
        raise ValueError(f"a composition needs at least two elements, got {v}")
    dup = sorted({e for e in v if v.count(e) > 1})
    if dup:
        raise ValueError(f"elements listed more than once: {dup}")
    bad = [e for e in v if not Element.is_valid_symbol(e)]
    if bad:
        raise ValueError(f"not chemical element symbols: {bad} (use symbols such as 'Fe')")
    return v


class FloatParameter(_Strict):
    """A real-valued parameter in `[low, high]`, optionally searched on a log scale."""

    type: Literal["float"] = "float"
    name: str
    low: float
    high: float
    log: bool = False
    unit: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "parameter name")

    @model_validator(mode="after")
    def _bounds(self) -> FloatParameter:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"bounds of '{self.name}' must be finite numbers")
        if self.low >= self.high:
            raise ValueError(
                f"empty bounds for '{self.name}': low={self.low} must be below high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"'{self.name}' has log = true, so low must be > 0 (got {self.low})")
        return self


class IntParameter(_Strict):
    """An integer parameter in `[low, high]` (both included)."""

    type: Literal["int"] = "int"
    name: str
    low: int
    high: int
    log: bool = False
    unit: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "parameter name")

    @model_validator(mode="after")
    def _bounds(self) -> IntParameter:
        if self.low >= self.high:
            raise ValueError(
                f"empty bounds for '{self.name}': low={self.low} must be below high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"'{self.name}' has log = true, so low must be > 0 (got {self.low})")
        return self


class CategoricalParameter(_Strict):
    """A parameter taking one of a list of named choices."""

    type: Literal["categorical"] = "categorical"
    name: str
    choices: list[str]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "parameter name")

    @model_validator(mode="after")
    def _choices(self) -> CategoricalParameter:
        if len(self.choices) < 2:
            raise ValueError(f"'{self.name}' needs at least two choices, got {self.choices}")
        dup = sorted({c for c in self.choices if self.choices.count(c) > 1})
        if dup:
            raise ValueError(f"'{self.name}' lists choices more than once: {dup}")
        return self


class CompositionParameter(_Strict):
    """Fractions of named elements that sum to `total`, each within optional min/max bounds.

    In ingest files each element is a column of its own (`Fe`, `Ni`, ...), or the parameter's
    name is a column holding a formula (`Fe0.7Ni0.3`).
    """

    type: Literal["composition"] = "composition"
    name: str
    elements: list[str]
    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    total: float = 1.0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "parameter name")

    @field_validator("elements")
    @classmethod
    def _elements(cls, v: list[str]) -> list[str]:
        return _check_elements(v)

    def lower(self, element: str) -> float:
        return float(self.min.get(element, 0.0))

    def upper(self, element: str) -> float:
        return float(self.max.get(element, self.total))

    @model_validator(mode="after")
    def _fractions(self) -> CompositionParameter:
        for key, table in (("min", self.min), ("max", self.max)):
            unknown = sorted(set(table) - set(self.elements))
            if unknown:
                raise ValueError(
                    f"{key} names elements not in elements of '{self.name}': {unknown}"
                )
        if self.total <= 0:
            raise ValueError(f"total of '{self.name}' must be > 0, got {self.total}")
        for el in self.elements:
            lo, hi = self.lower(el), self.upper(el)
            if not (0.0 <= lo <= hi <= self.total):
                raise ValueError(
                    f"fraction bounds of {el} in '{self.name}' must satisfy "
                    f"0 <= min <= max <= total ({self.total}); got min={lo}, max={hi}"
                )
            if lo == hi:
                raise ValueError(
                    f"min and max of {el} in '{self.name}' are both {lo}: the element is fixed; "
                    "leave it out of the composition instead"
                )
        lo_sum = sum(self.lower(e) for e in self.elements)
        hi_sum = sum(self.upper(e) for e in self.elements)
        if lo_sum > self.total + 1e-9 or hi_sum < self.total - 1e-9:
            raise ValueError(
                f"no composition of '{self.name}' sums to {self.total}: the mins add to "
                f"{lo_sum:g} and the maxes to {hi_sum:g}; loosen min or max"
            )
        return self


Parameter = Annotated[
    FloatParameter | IntParameter | CategoricalParameter | CompositionParameter,
    Field(discriminator="type"),
]


class PoolSpec(_Strict):
    """A discrete candidate pool read from a CSV file.

    `columns` maps parameter names to the file's column names (a list means the same names).
    Identical rows are one candidate. Parameters not declared in the spec are inferred from the
    pool: numeric columns become floats bounded by the data, others categoricals.
    """

    path: str
    columns: dict[str, str] | list[str]
    key: str | None = None

    def column_map(self) -> dict[str, str]:
        if isinstance(self.columns, list):
            return {c: c for c in self.columns}
        return dict(self.columns)

    @model_validator(mode="after")
    def _cols(self) -> PoolSpec:
        cmap = self.column_map()
        if not cmap:
            raise ValueError("pool.columns is empty; name the input columns of the pool file")
        for name in cmap:
            _check_name(name, "pool parameter name")
        return self


class ChemicalSpaceSpec(_Strict):
    """A pool of every composition of `elements` on a grid of fractions (`[compositions]`).

    Each candidate has between `min_components` and `max_components` elements with a nonzero
    fraction, each fraction a multiple of `step`, summing to 1; with `charge_balanced`, only those
    pymatgen can balance with common oxidation states. The campaign's design parameter is one
    composition parameter named `name` over `elements` (filled in by `CampaignSpec`), so ingest
    files give one column per element or a formula in the column `name`. The pool is stored in
    SQL, so spaces above `max_candidates` (counted before the charge-balance filter, which also
    bounds the time to create the campaign) are refused.
    """

    name: str = "composition"
    elements: list[str]
    min_components: int = Field(default=1, ge=1)
    max_components: int | None = Field(default=None, ge=1)
    step: float = Field(default=0.05, gt=0, le=1)
    charge_balanced: bool = False
    max_candidates: int = Field(default=200_000, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "composition name")

    @field_validator("elements")
    @classmethod
    def _elements(cls, v: list[str]) -> list[str]:
        return _check_elements(v)

    @field_validator("step")
    @classmethod
    def _step(cls, v: float) -> float:
        grid_units(v)
        return v

    @model_validator(mode="after")
    def _size(self) -> ChemicalSpaceSpec:
        space = self.space()  # checks min_components <= max_components <= len(elements)
        n = space.count
        k = space.components
        comps = f"{k.start}" if len(k) == 1 else f"{k.start}-{k.stop - 1}"
        what = f"{len(self.elements)} elements, {comps} components, step {self.step:g}"
        if n == 0:
            raise ValueError(
                f"the space holds no composition ({what}): {space.units} grid units cannot be "
                f"shared among {k.start} elements; use a smaller step or lower min_components"
            )
        if n > self.max_candidates:
            raise ValueError(
                f"the space holds {n:,} compositions ({what}), more than max_candidates = "
                f"{self.max_candidates:,} (the pool is stored in SQL); use a larger step, fewer "
                "elements or a lower max_components, or raise max_candidates"
            )
        return self

    def space(self) -> ChemicalSpace:
        """The enumerator of this space."""
        return ChemicalSpace(
            tuple(self.elements),
            step=self.step,
            min_components=self.min_components,
            max_components=self.max_components,
            charge_balanced=self.charge_balanced,
        )

    def parameter(self) -> CompositionParameter:
        """The campaign's design parameter: one composition over `elements`."""
        return CompositionParameter(name=self.name, elements=list(self.elements))


#: The surrogate a `[structures]` campaign gets when its spec names none.
STRUCTURE_SURROGATE = "cgcnn-ensemble"


class SubstitutionSpec(_Strict):
    """Candidates made by substituting the labelled sites of prototype structures
    (`[structures.substitute]`), as CAMD makes them for DFT campaigns; see `loop.structgen`."""

    prototypes: list[str] = Field(default_factory=lambda: ["perovskite"])
    sites: dict[str, list[str]]
    charge_balanced: bool = True
    radius_rule: Literal["auto", "goldschmidt", "none"] = "auto"
    tolerance: tuple[float, float] = (0.8, 1.1)
    radii: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SubstitutionSpec:
        if not self.prototypes:
            raise ValueError('prototypes is empty; name "perovskite" (built in) or structure files')
        if not self.sites:
            raise ValueError(
                'sites is empty; map each site label to elements, e.g. sites = { A = ["Sr", '
                '"Ba"], B = ["Ti", "Zr"], X = ["O"] }'
            )
        return self


class StructureSpaceSpec(_Strict):
    """A pool of crystal structures (`[structures]`), for crystal-graph surrogates (CGCNN).

    `path` is a CSV file with a CIF column (`cif_column`; `key` names a column of structure ids
    such as `material_id`), a JSON file (a list of pymatgen `Structure` dicts, optionally
    gzipped), or a folder of `.cif`, POSCAR/`.vasp` and pymatgen `.json` files (each file's
    name is its id). Identical structures are one candidate. The campaign's design parameter is
    one integer column `name` (default `structure`): the candidate's index in the pool, which is
    how structures enter BoTorch; every proposal also carries the structure's `id`, reduced
    `formula` and `cif`, so a simulation worker or a lab gets the whole crystal. Instead of a
    file, `[structures.substitute]` generates the pool from prototypes.
    """

    name: str = "structure"
    path: str | None = None
    cif_column: str = "cif"
    key: str | None = None
    substitute: SubstitutionSpec | None = None
    max_candidates: int = Field(default=200_000, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "structure parameter name")

    @model_validator(mode="after")
    def _source(self) -> StructureSpaceSpec:
        if (self.path is None) == (self.substitute is None):
            raise ValueError(
                "give the pool either as a file (path = ...) or as prototype substitution "
                "([structures.substitute]), not both and not neither"
            )
        return self


#: The surrogate a `[microstructures]` campaign gets when its spec names none.
MICROSTRUCTURE_SURROGATE = "cnn3d-ensemble"


class MicrostructureSpaceSpec(_Strict):
    """A pool of two-phase voxel microstructures (`[microstructures]`), for 3-D CNN surrogates.

    `path` is a `.npy`, `.npz` or HDF5 file holding a stack of 2-D or 3-D images (`key` names
    the array or dataset, default `images`, as `loop simulate microstructures` writes it); each
    voxel holds the fraction of phase 1 (0 or 1 for a binary image). The campaign's design
    parameter is one integer column `name` (default `image`): the image's index in the stack.
    """

    name: str = "image"
    path: str
    key: str = "images"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "microstructure parameter name")


class LatentSpaceSpec(_Strict):
    """The latent box of a stored microstructure GAN as the design space (`[latent]`).

    The design parameters are the `size x size` latent values, each in [0, 1], named
    `prefix` + two-digit index (`z00` .. `z15` for the paper's 4 x 4 map). Every proposal also
    carries its decoded binary microstructure under `image` (packed, see
    `loop.microgen.pack_image`), which the homogenization simulator reads. With
    `volume_fraction`, each decoded field is thresholded at its own quantile so that exactly that
    fraction of pixels is phase 1 (a fixed volume fraction met by construction, not by a
    constraint); without it, at 0.5.
    """

    gan: str
    size: int = Field(default=4, ge=1, le=64)
    prefix: str = "z"
    image: str = "image"
    volume_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)

    @field_validator("prefix", "image")
    @classmethod
    def _names(cls, v: str) -> str:
        return _check_name(v, "latent name")

    def names(self) -> list[str]:
        width = max(2, len(str(self.size * self.size - 1)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(self.size * self.size)]

    def parameters(self) -> list[FloatParameter]:
        return [FloatParameter(name=n, low=0.0, high=1.0) for n in self.names()]


class HullSpec(_Strict):
    """Stability as an outcome (`[hull]`, structure campaigns): results report each structure's
    energy per atom in the column `energy`, and ingest stores the outcome `objective` as that
    energy minus the convex hull of `references` at the structure's composition (eV/atom;
    negative: below every known phase, a candidate new stable compound). The hull of the
    references is fixed, so a structure's value does not change as others are measured; the
    report draws the hull with the measured phases included. `references` are
    `[formula, energy_per_atom]` pairs from the same energy model as the results (elements
    included); `references_file` is a CSV file with columns `formula` and `energy_per_atom`,
    read into `references` when the campaign is created."""

    objective: str = "e_above_hull"
    energy: str = "energy_per_atom"
    references: list[tuple[str, float]] = Field(default_factory=list)
    references_file: str | None = None

    @field_validator("energy")
    @classmethod
    def _energy(cls, v: str) -> str:
        return _check_name(v, "hull energy column")

    @model_validator(mode="after")
    def _refs(self) -> HullSpec:
        if not self.references and self.references_file is None:
            raise ValueError(
                'the hull needs references: references = [["Sr", -1.7], ["SrO", -5.9], ...] '
                'or references_file = "refs.csv" (columns formula, energy_per_atom)'
            )
        return self


class Objective(_Strict):
    """A measured quantity to maximize or minimize."""

    name: str
    direction: Literal["maximize", "minimize"] = "maximize"
    unit: str = ""
    #: Several objectives: the worst value still worth having (the hypervolume's reference
    #: point); inferred from the measured front when omitted.
    reference: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "objective name")

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0


class OutcomeConstraint(_Strict):
    """A measured outcome that must stay within `[lower, upper]` (either may be omitted)."""

    name: str
    lower: float | None = None
    upper: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "constraint name")

    @model_validator(mode="after")
    def _limits(self) -> OutcomeConstraint:
        if self.lower is None and self.upper is None:
            raise ValueError(f"constraint '{self.name}' needs lower, upper or both")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(
                f"constraint '{self.name}' is empty: lower={self.lower} >= upper={self.upper}"
            )
        return self


class StopRule(_Strict):
    """Stop proposing once an objective reaches a target value."""

    target: float
    objective: str | None = None


class ModelSpec(_Strict):
    """Surrogate and acquisition by registry name, with their options."""

    surrogate: str = "gp"
    acquisition: str = "qucb"
    surrogate_options: dict[str, Any] = Field(default_factory=dict)
    acquisition_options: dict[str, Any] = Field(default_factory=dict)
    #: What a failed experiment does to later batches. `avoid`: it joins every batch as a pending
    #: point, so candidates like it score lower; `exclude`: only it is never proposed again.
    failed: Literal["avoid", "exclude"] = "avoid"


class LinearConstraint(_Strict):
    """`lower <= sum(coefficient * value) <= upper` over float parameters and composition
    elements, for every proposal of a `[[parameters]]` space (a budget of total heat input,
    a ceiling on two elements together)."""

    terms: dict[str, float]
    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> LinearConstraint:
        if not self.terms:
            raise ValueError("terms is empty; give e.g. terms = { Fe = 1.0, Ni = 1.0 }")
        if self.lower is None and self.upper is None:
            raise ValueError("give lower, upper or both")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower {self.lower} is above upper {self.upper}")
        return self

    def describe(self) -> str:
        lhs = " + ".join(f"{c:g}*{n}" for n, c in self.terms.items())
        lo = "" if self.lower is None else f"{self.lower:g} <= "
        hi = "" if self.upper is None else f" <= {self.upper:g}"
        return f"{lo}{lhs}{hi}"


class SimulatorSpec(_Strict):
    """An oracle that turns proposals into measurements (for demos, tests and benchmarks)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class CampaignSpec(_Strict):
    """A whole campaign: design space, objectives, budget and planner settings."""

    name: str
    description: str = ""
    parameters: list[Parameter] = Field(default_factory=list)
    pool: PoolSpec | None = None
    compositions: ChemicalSpaceSpec | None = None
    structures: StructureSpaceSpec | None = None
    microstructures: MicrostructureSpaceSpec | None = None
    latent: LatentSpaceSpec | None = None
    hull: HullSpec | None = None
    objectives: list[Objective]
    constraints: list[OutcomeConstraint] = Field(default_factory=list)
    linear_constraints: list[LinearConstraint] = Field(default_factory=list)
    budget: int = Field(gt=0)
    stop: StopRule | None = None
    batch_size: int = Field(default=4, ge=1, le=1000)
    initial_design: int | None = Field(default=None, ge=1)
    model: ModelSpec = Field(default_factory=ModelSpec)
    simulator: SimulatorSpec | None = None
    #: Cost of one measurement from each source (the `source` column of ingested results,
    #: `experiment` by default), in any unit the campaign likes; the report draws progress
    #: against cumulative cost when results come from several sources. None: not declared.
    costs: dict[str, float] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "campaign name")

    @field_validator("costs", mode="before")
    @classmethod
    def _costs(cls, v: Any) -> Any:
        if v is None:
            return v
        example = 'experiment = 1.0 and dft = 0.05 under "[costs]"'
        if not isinstance(v, dict):
            raise ValueError(
                f"costs must be a table of source = cost per measurement, got {v!r}; "
                f"for example {example}"
            )
        if not v:
            raise ValueError(f"costs is empty; remove the table or give {example}")
        for key, cost in v.items():
            if not isinstance(key, str) or not key.strip() or key != key.strip():
                raise ValueError(
                    f"costs key {key!r} is not a source name; use the source exactly as "
                    "ingested (non-empty, no surrounding spaces), e.g. experiment"
                )
            if len(key) > MAX_SOURCE_NAME:
                raise ValueError(
                    f"costs key '{key[:40]}...' has {len(key)} characters; sources have at "
                    f"most {MAX_SOURCE_NAME}"
                )
            if (
                isinstance(cost, bool)
                or not isinstance(cost, (int, float))
                or not math.isfinite(cost)
                or cost < 0
            ):
                raise ValueError(
                    f"costs.{key} is {cost!r}; give the cost of one '{key}' measurement as a "
                    f"number of 0 or more, e.g. {key} = 1.0"
                )
        if not any(c > 0 for c in v.values()):
            raise ValueError("every cost in costs is 0; give at least one source a positive cost")
        return {k: float(c) for k, c in v.items()}

    @model_validator(mode="before")
    @classmethod
    def _derive_parameters(cls, raw: Any) -> Any:
        """Give a `[compositions]` campaign its design parameter, unless the spec lists some
        (they must then be exactly that one; `_whole` checks)."""
        if isinstance(raw, dict) and isinstance(raw.get("structures"), dict):
            model = raw.get("model")
            if model is None or (isinstance(model, dict) and "surrogate" not in model):
                raw = {**raw, "model": {**(model or {}), "surrogate": STRUCTURE_SURROGATE}}
        if isinstance(raw, dict) and isinstance(raw.get("microstructures"), dict):
            model = raw.get("model")
            if model is None or (isinstance(model, dict) and "surrogate" not in model):
                raw = {**raw, "model": {**(model or {}), "surrogate": MICROSTRUCTURE_SURROGATE}}
        if isinstance(raw, dict) and isinstance(raw.get("latent"), dict):
            if not raw.get("parameters"):
                try:
                    lat = LatentSpaceSpec.model_validate(raw["latent"])
                except ValidationError:
                    return raw  # reported where the field is validated
                raw = {**raw, "parameters": [p.model_dump(mode="json") for p in lat.parameters()]}
        if isinstance(raw, dict) and isinstance(raw.get("compositions"), dict):
            if not raw.get("parameters"):
                try:
                    space = ChemicalSpaceSpec.model_validate(raw["compositions"])
                except ValidationError:
                    return raw  # reported where the field is validated
                raw = {**raw, "parameters": [space.parameter().model_dump(mode="json")]}
        return raw

    @model_validator(mode="after")
    def _whole(self) -> CampaignSpec:
        if not self.objectives:
            raise ValueError("objectives is empty; add at least one [[objectives]] table")
        if (
            not self.parameters
            and self.pool is None
            and self.structures is None
            and self.microstructures is None
        ):
            raise ValueError(
                "the design space is empty: add [[parameters]] tables, a [pool], "
                "[compositions], [structures] or [microstructures]"
            )
        if self.latent is not None:
            others = [
                t
                for t, v in (
                    ("[pool]", self.pool),
                    ("[compositions]", self.compositions),
                    ("[structures]", self.structures),
                    ("[microstructures]", self.microstructures),
                )
                if v is not None
            ]
            if others:
                raise ValueError(
                    f"the spec has both [latent] and {' and '.join(others)}; a campaign has one "
                    "design space, so keep one of them"
                )
            if self.parameters != self.latent.parameters():
                raise ValueError(
                    "[[parameters]] cannot sit beside [latent]: the design parameters are the "
                    f"GAN's latent values ({self.latent.names()[0]} .. "
                    f"{self.latent.names()[-1]}, each in [0, 1]); remove the [[parameters]] tables"
                )
        if self.microstructures is not None:
            others = [
                t
                for t, v in (
                    ("[pool]", self.pool),
                    ("[compositions]", self.compositions),
                    ("[structures]", self.structures),
                )
                if v is not None
            ]
            if others:
                raise ValueError(
                    f"the spec has both [microstructures] and {' and '.join(others)}; a campaign "
                    "has one candidate pool, so keep one of them"
                )
            ms = self.microstructures.name
            if self.parameters and not (
                len(self.parameters) == 1
                and isinstance(self.parameters[0], IntParameter)
                and self.parameters[0].name == ms
                and self.parameters[0].low == 0
            ):
                raise ValueError(
                    "[[parameters]] cannot sit beside [microstructures]: the design parameter "
                    f"is the image's index in the stack ('{ms}'), derived from the image file; "
                    "remove the [[parameters]] tables"
                )
        if self.structures is not None:
            others = [
                t
                for t, v in (("[pool]", self.pool), ("[compositions]", self.compositions))
                if v is not None
            ]
            if others:
                raise ValueError(
                    f"the spec has both [structures] and {' and '.join(others)}; a campaign has "
                    "one candidate pool, so keep one of them"
                )
            st = self.structures.name
            if self.parameters and not (
                len(self.parameters) == 1
                and isinstance(self.parameters[0], IntParameter)
                and self.parameters[0].name == st
                and self.parameters[0].low == 0
            ):
                raise ValueError(
                    "[[parameters]] cannot sit beside [structures]: the design parameter is the "
                    f"structure's index in the pool ('{st}'), derived from the pool file; "
                    "remove the [[parameters]] tables"
                )
        if self.compositions is not None:
            if self.pool is not None:
                raise ValueError(
                    "the spec has both [pool] and [compositions]; a campaign has one candidate "
                    "pool, so keep one of them"
                )
            derived = self.compositions.parameter()
            if self.parameters != [derived]:
                raise ValueError(
                    "[[parameters]] cannot sit beside [compositions]: the design parameter is "
                    f"derived from it (composition '{derived.name}' of {derived.elements}); "
                    "remove the [[parameters]] tables"
                )
        seen: dict[str, str] = {}

        def claim(name: str, what: str) -> None:
            if name in RESERVED_COLUMNS:
                raise ValueError(
                    f"{what} '{name}' uses a reserved column name; rename it "
                    f"(reserved: {', '.join(sorted(RESERVED_COLUMNS))})"
                )
            if name in seen:
                raise ValueError(
                    f"duplicate name '{name}': used by {seen[name]} and by {what}; "
                    "names of parameters, elements, objectives and constraints must be unique"
                )
            seen[name] = what

        for p in self.parameters:
            claim(p.name, f"parameter '{p.name}'")
            if isinstance(p, CompositionParameter):
                for el in p.elements:
                    claim(el, f"element {el} of composition '{p.name}'")
        if self.structures is not None and not self.parameters:
            claim(self.structures.name, f"structure parameter '{self.structures.name}'")
        if self.microstructures is not None and not self.parameters:
            claim(self.microstructures.name, f"image parameter '{self.microstructures.name}'")
        for o in self.objectives:
            claim(o.name, f"objective '{o.name}'")
        for c in self.constraints:
            if c.name in {o.name for o in self.objectives}:
                raise ValueError(
                    f"constraint '{c.name}' constrains an objective; use a stop rule or a "
                    "separate measured outcome"
                )
            claim(c.name, f"constraint '{c.name}'")
        if self.hull is not None:
            if self.structures is None:
                raise ValueError("[hull] scores crystal structures; it needs a [structures] pool")
            if self.hull.objective not in self.outcome_names:
                raise ValueError(
                    f"hull.objective '{self.hull.objective}' is not an objective or constraint; "
                    f'add [[objectives]] name = "{self.hull.objective}" (direction = '
                    '"minimize")'
                )
            claim(self.hull.energy, f"hull energy column '{self.hull.energy}'")
        for name in self.outcome_names:
            if name + "_std" in seen:
                raise ValueError(
                    f"name '{name}_std' is reserved for the noise of '{name}'; rename it"
                )
        if self.pool is not None:
            cols = list(self.pool.column_map().values())
            dup_cols = sorted({c for c in cols if cols.count(c) > 1})
            if dup_cols:
                raise ValueError(f"pool.columns maps several parameters to {dup_cols}")
            declared = {p.name for p in self.parameters}
            pool_names = set(self.pool.column_map())
            if declared and declared != pool_names:
                raise ValueError(
                    f"pool.columns names {sorted(pool_names)} but parameters declares "
                    f"{sorted(declared)}; make them the same or leave parameters out"
                )
            if any(isinstance(p, CompositionParameter) for p in self.parameters):
                raise ValueError("pool campaigns take plain columns, not composition parameters")
        if self.linear_constraints:
            if self.is_pool:
                raise ValueError(
                    "linear_constraints apply to [[parameters]] spaces; a pool's candidates are "
                    "given, so leave the rows that break them out of the pool"
                )
            usable: dict[str, str] = {}
            for p in self.parameters:
                if isinstance(p, FloatParameter) and not p.log:
                    usable[p.name] = "float"
                elif isinstance(p, CompositionParameter):
                    usable.update({el: "element" for el in p.elements})
            for i, lc in enumerate(self.linear_constraints):
                for name in lc.terms:
                    if name not in usable:
                        raise ValueError(
                            f"linear_constraints[{i}] ({lc.describe()}) names '{name}', which is "
                            "not a float parameter on a linear scale or a composition element; "
                            f"usable names: {', '.join(sorted(usable)) or '(none)'}"
                        )
        if self.stop is not None:
            target = self.stop.objective or self.objectives[0].name
            if target not in {o.name for o in self.objectives}:
                raise ValueError(
                    f"stop.objective '{target}' is not an objective; use one of "
                    f"{[o.name for o in self.objectives]}"
                )
        return self

    # -- helpers the engine uses -------------------------------------------------------------
    @property
    def is_pool(self) -> bool:
        """Whether the planner picks from a stored candidate pool (`[pool]`, `[compositions]`,
        `[structures]` or `[microstructures]`)."""
        return any(
            t is not None
            for t in (self.pool, self.compositions, self.structures, self.microstructures)
        )

    @property
    def outcome_names(self) -> list[str]:
        """Objectives then constrained outcomes: every value a measurement must carry."""
        return [o.name for o in self.objectives] + [c.name for c in self.constraints]

    def n_initial(self) -> int:
        """Size of the space-filling initial design (default: dimensions + 1, 2 to 10)."""
        if self.initial_design is not None:
            return self.initial_design
        if self.structures is not None:
            # one index column says nothing about the space: start a graph network from 10
            return 10
        d = sum(
            len(p.elements) - 1 if isinstance(p, CompositionParameter) else 1
            for p in self.parameters
        )
        return max(2, min(10, d + 1))

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# -- loading and error messages --------------------------------------------------------------


def _unwrap(tp: Any) -> list[Any]:
    """The BaseModel classes a field annotation may hold."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, list, dict) or str(origin) == "types.UnionType":
        out: list[Any] = []
        for a in typing.get_args(tp):
            out += _unwrap(a)
        return out
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    try:
        import types

        if isinstance(tp, types.UnionType):
            out = []
            for a in typing.get_args(tp):
                out += _unwrap(a)
            return out
    except AttributeError:  # pragma: no cover
        pass
    return []


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Keys allowed in the table that holds `loc[-1]`."""
    models: list[Any] = [CampaignSpec]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        nxt: list[Any] = []
        for m in models:
            if part in m.model_fields:
                nxt += _unwrap(m.model_fields[part].annotation)
            else:  # a discriminator tag selects one member of a union
                fld = m.model_fields.get("type")
                if fld is not None and fld.default == part:
                    nxt.append(m)
        models = nxt or models
    keys: set[str] = set()
    for m in models:
        keys |= set(m.model_fields)
    return sorted(keys)


def _where(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                nm = node[part].get("name")
                if nm:
                    label = f"[{part}] ('{nm}')"
            parts.append(label)
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, dict) and part in node:
            parts.append(("." if parts else "") + str(part))
            node = node[part]
        elif part in ("float", "int", "categorical", "composition", "function-after"):
            continue  # union tags pydantic adds to the location
        else:
            parts.append(("." if parts else "") + str(part))
            node = None
    return "".join(parts) or "(top level)"


def _format_errors(err: ValidationError, raw: dict[str, Any], source: str) -> SpecError:
    problems = []
    hints = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = _where(loc, raw)
        kind = e["type"]
        msg = e["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc)
            problems.append(f"unknown key '{where}'")
            hints.append(
                f"remove '{loc[-1]}' or fix its spelling; allowed here: {', '.join(allowed)}"
            )
        elif kind == "missing":
            problems.append(f"missing key '{where}'")
            hints.append(f"add '{loc[-1]}'")
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            problems.append(f"'{where}': {msg}")
            hints.append("set type to one of float, int, categorical, composition")
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            problems.append(f"wrong type for '{where}': {msg} (got {e.get('input')!r})")
            hints.append(f"give '{loc[-1]}' a value of the right type")
        else:
            problems.append(f"'{where}': {msg}")
    message = f"{source}: invalid campaign spec: " + "; ".join(problems)
    return SpecError(message, "; ".join(dict.fromkeys(hints)) or "fix the spec and try again")


def parse_spec(raw: dict[str, Any], source: str = "spec") -> CampaignSpec:
    """Validate a spec given as a dict (from TOML or JSON)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a campaign spec must be a table, got {type(raw).__name__}")
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as err:
        raise _format_errors(err, raw, source) from None


def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a TOML campaign spec file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file {p} does not exist", "give the path of a .toml campaign spec")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{p}: not valid TOML: {err}", "fix the TOML syntax at that line") from None
    return parse_spec(raw, str(p))
