"""Data set specs: a table of real measurements, described well enough to replay it as an oracle.

A spec is a small TOML file naming the CSV file, its input columns and their kinds, the objective
column and its direction, how replicate rows are combined and, optionally, outcome constraints.
Olympus data sets (a folder holding `config.json` and a headerless `data.csv`) are read directly:
pass the folder or its `config.json`, or point a TOML spec at it with `format = "olympus"` to
override what the config says (the Olympus AgNP config names the wrong goal, for example).

Example:

    name = "crossed_barrel"
    path = "../data/crossed_barrel_dataset.csv"   # relative to this file
    replicates = "mean"

    [[inputs]]
    column = "n"
    kind = "int"

    [[inputs]]
    column = "theta"

    [objective]
    column = "toughness"
    direction = "maximize"
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loop.errors import LoopError, SpecError
from loop.simulators.dataset import input_key, parse_number, read_table_text, table_rows
from loop.spec import (
    CampaignSpec,
    CategoricalParameter,
    FloatParameter,
    IntParameter,
    ModelSpec,
    Objective,
    OutcomeConstraint,
    Parameter,
    PoolSpec,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DatasetSpec", "Dataset", "load_dataset", "load_dataset_spec"]

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputColumn(_Strict):
    """One input column: `float` and `int` columns are numbers, `categorical` ones are labels."""

    column: str
    name: str | None = None
    kind: Literal["float", "int", "categorical"] = "float"


class ObjectiveColumn(_Strict):
    """The objective column and whether larger or smaller values are better."""

    column: str | None = None
    name: str | None = None
    direction: Literal["maximize", "minimize"] | None = None


class ConstraintColumn(_Strict):
    """An outcome that must stay within `[lower, upper]` for a candidate to count as a success."""

    column: str
    name: str | None = None
    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _limits(self) -> ConstraintColumn:
        if self.lower is None and self.upper is None:
            raise ValueError(f"constraint on '{self.column}' needs lower, upper or both")
        return self


class DatasetSpec(_Strict):
    """A replayable data set (see the module docstring for the file format)."""

    name: str
    description: str = ""
    reference: str = ""
    path: str
    format: Literal["csv", "olympus"] = "csv"
    inputs: list[InputColumn] = Field(default_factory=list)
    objective: ObjectiveColumn = Field(default_factory=ObjectiveColumn)
    replicates: Literal["mean", "median", "min", "max", "first"] = "mean"
    constraints: list[ConstraintColumn] = Field(default_factory=list)


@dataclass
class Dataset:
    """A data set reduced to its unique inputs: the pool and the oracle of a benchmark.

    Attributes:
        spec: The spec it was read from.
        source: The file it was read from (for messages and reports).
        parameters: The campaign parameters of the inputs (bounds from the data).
        columns: Parameter name -> input column of the file.
        candidates: One parameter dict per unique input, in file order.
        y: Objective per candidate (replicates combined), in the file's units.
        outcomes: Constraint outcome values per candidate, `N x k`.
        n_rows: Rows read (replicates included).
    """

    spec: DatasetSpec
    source: str
    parameters: list[Parameter]
    columns: dict[str, str]
    candidates: list[dict[str, Any]]
    y: np.ndarray
    outcomes: np.ndarray
    n_rows: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def objective_name(self) -> str:
        return self.spec.objective.name or _safe_name(self.spec.objective.column or "objective")

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return self.spec.objective.direction or "maximize"

    @property
    def n(self) -> int:
        return len(self.candidates)

    def feasible(self) -> np.ndarray:
        """Which candidates satisfy every outcome constraint."""
        ok = np.ones(self.n, dtype=bool)
        for j, c in enumerate(self.spec.constraints):
            if c.lower is not None:
                ok &= self.outcomes[:, j] >= c.lower
            if c.upper is not None:
                ok &= self.outcomes[:, j] <= c.upper
        return ok

    def ranking(self) -> np.ndarray:
        """Candidate indices from best to worst (infeasible ones last; ties in file order)."""
        score = -self.y if self.direction == "maximize" else self.y.copy()
        infeasible = ~self.feasible()
        return np.lexsort((np.arange(self.n), score, infeasible))

    def top(self, fraction: float) -> np.ndarray:
        """The best `ceil(fraction * F)` of the `F` feasible candidates (all, without constraints).

        Empty when no candidate is feasible.
        """
        n_ok = int(self.feasible().sum())
        if n_ok == 0:
            return np.zeros(0, dtype=np.int64)
        k = max(1, math.ceil(fraction * n_ok - 1e-9))
        return self.ranking()[:k]

    def campaign_spec(self, model: ModelSpec, *, budget: int, batch_size: int) -> CampaignSpec:
        """The pool campaign a user would create for this data set."""
        names = [c.name or _safe_name(c.column) for c in self.spec.constraints]
        return CampaignSpec(
            name=_safe_name(self.name),
            description=self.spec.description,
            parameters=self.parameters,
            pool=PoolSpec(path=self.source, columns=self.columns),
            objectives=[Objective(name=self.objective_name, direction=self.direction)],
            constraints=[
                OutcomeConstraint(name=n, lower=c.lower, upper=c.upper)
                for n, c in zip(names, self.spec.constraints, strict=True)
            ],
            budget=budget,
            batch_size=batch_size,
            model=model,
        )


def _safe_name(text: str) -> str:
    """A valid parameter name from a column header: `QAgNO3(%)` -> `QAgNO3`."""
    name = _NAME_BAD.sub("_", text.strip()).strip("_.-")
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "x_" + name
    return name


def load_dataset_spec(path: str | Path) -> tuple[DatasetSpec, Path]:
    """Read a data set spec: a TOML file, an Olympus folder, or an Olympus `config.json`.

    Returns:
        The spec and the folder its relative paths are resolved against.

    Raises:
        SpecError: The file is missing, is not TOML, or has unknown or invalid keys.
    """
    p = Path(path).expanduser()
    if p.is_dir() or p.name == "config.json":
        folder = p if p.is_dir() else p.parent
        if not (folder / "config.json").is_file():
            raise SpecError(
                f"{p} is a folder without config.json",
                "give a data set spec (.toml) or an Olympus data set folder",
            )
        return (
            DatasetSpec(name=folder.name, path=str(folder.resolve()), format="olympus"),
            folder.parent,
        )
    if not p.is_file():
        raise SpecError(f"data set spec {p} does not exist", "check the path")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"data set spec {p} is not valid TOML: {err}", "fix the syntax") from None
    try:
        return DatasetSpec.model_validate(raw), p.parent
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(x) for x in e["loc"]) or "(top level)"
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = "unknown key; allowed: " + ", ".join(_allowed(e["loc"]))
            problems.append(f"{where}: {msg}")
        raise SpecError(
            f"data set spec {p} is invalid: " + "; ".join(problems),
            "see the data set spec format in docs/benchmarks.md",
        ) from None


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    models: dict[str, type[BaseModel]] = {
        "inputs": InputColumn,
        "objective": ObjectiveColumn,
        "constraints": ConstraintColumn,
    }
    model = models.get(str(loc[0]), DatasetSpec) if len(loc) > 1 else DatasetSpec
    return list(model.model_fields)


def load_dataset(path: str | Path) -> Dataset:
    """Read a data set spec and its table.

    Raises:
        SpecError: The spec is invalid.
        LoopError: The table is missing, lacks a named column, or holds a value that does not fit
            its column's kind (each message names the file, line and column).
    """
    spec, base = load_dataset_spec(path)
    if spec.format == "olympus":
        spec, header, text, label = _olympus(spec, base)
    else:
        text, label = read_table_text(spec.path, base)
        header = None
    return _build(spec, text, label, header)


def _olympus(spec: DatasetSpec, base: Path) -> tuple[DatasetSpec, list[str], str, str]:
    folder = Path(spec.path).expanduser()
    if not folder.is_absolute():
        folder = base / folder
    if folder.name == "config.json":
        folder = folder.parent
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise LoopError(
            f"Olympus data set folder {folder} has no config.json",
            "point 'path' at a folder holding config.json and data.csv",
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        params = cfg["parameters"]
        measurements = cfg["measurements"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise LoopError(
            f"{cfg_path} is not an Olympus config ({err!s})",
            "it needs 'parameters' and 'measurements' lists and a 'default_goal'",
        ) from None
    header = [str(p["name"]) for p in params] + [str(m["name"]) for m in measurements]
    kinds = {
        str(p["name"]): "categorical" if p.get("type") == "categorical" else "float" for p in params
    }
    inputs = spec.inputs or [InputColumn(column=n, kind=kinds[n]) for n in kinds]  # type: ignore[arg-type]
    goal = cfg.get("default_goal", "maximize")
    obj = spec.objective
    objective = ObjectiveColumn(
        column=obj.column or header[len(params)],
        name=obj.name,
        direction=obj.direction or ("minimize" if goal == "minimize" else "maximize"),
    )
    desc = spec.description
    if not desc and (folder / "description.txt").is_file():
        desc = (folder / "description.txt").read_text(encoding="utf-8").strip().splitlines()[0]
    spec = spec.model_copy(update={"inputs": inputs, "objective": objective, "description": desc})
    text, label = read_table_text(str(folder / "data.csv"), None)
    return spec, header, text, label


def _build(spec: DatasetSpec, text: str, label: str, header: list[str] | None) -> Dataset:
    reader = csv.reader(io.StringIO(text))
    if header is None:
        first = next(reader, None)
        if first is None:
            raise LoopError(f"data file {label} is empty", "give a CSV file with a header row")
        header = [h.strip() for h in first]
    if not spec.inputs:
        raise SpecError(
            f"data set spec '{spec.name}' names no inputs",
            'add one [[inputs]] table per input column, e.g. column = "x", kind = "float"',
        )
    if spec.objective.column is None:
        raise SpecError(
            f"data set spec '{spec.name}' names no objective column",
            'add [objective] with column = "..." and direction = "maximize" or "minimize"',
        )

    def col(name: str, where: str) -> int:
        hits = [i for i, h in enumerate(header) if h == name.strip()]
        if not hits:
            raise LoopError(
                f"data file {label} has no column '{name}' (named by {where} in the data set spec "
                f"'{spec.name}'); its columns are: {', '.join(repr(h) for h in header)}",
                f"fix {where} to one of the file's column names",
            )
        return hits[0]

    in_idx = [col(c.column, f"inputs[{i}].column") for i, c in enumerate(spec.inputs)]
    obj_idx = col(spec.objective.column, "objective.column")
    con_idx = [col(c.column, f"constraints[{i}].column") for i, c in enumerate(spec.constraints)]
    names = [c.name or _safe_name(c.column) for c in spec.inputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(
            f"data set spec '{spec.name}': input names {dup} repeat",
            "give the inputs distinct `name`s",
        )

    def number(cell: str, line: int, j: int) -> float:
        return parse_number(
            cell,
            f"data file {label}, line {line}, column '{header[j]}'",
            'fix or drop that row, or declare the column kind = "categorical"',
        )

    groups: dict[tuple[Any, ...], list[list[float]]] = {}
    first_row: dict[tuple[Any, ...], dict[str, Any]] = {}
    n_rows = 0
    for line, row in table_rows(reader, len(header), label):
        vals: dict[str, Any] = {}
        for c, j, n in zip(spec.inputs, in_idx, names, strict=True):
            cell = row[j].strip()
            if c.kind == "categorical":
                vals[n] = cell
            else:
                x = number(cell, line, j)
                if c.kind == "int":
                    if x != round(x):
                        raise LoopError(
                            f"data file {label}, line {line}, column '{header[j]}': {cell!r} is "
                            "not a whole number",
                            'declare the column kind = "float"',
                        )
                    x = int(round(x))
                vals[n] = x
        key = tuple(v if isinstance(v, str) else input_key([v])[0] for v in vals.values())
        outs = [number(row[obj_idx], line, obj_idx)] + [number(row[j], line, j) for j in con_idx]
        if key not in groups:
            groups[key] = []
            first_row[key] = vals
        groups[key].append(outs)
        n_rows += 1
    if n_rows == 0:
        raise LoopError(f"data file {label} has no data rows", "add measurements")

    reduce = {
        "mean": lambda a: a.mean(axis=0),
        "median": lambda a: np.median(a, axis=0),
        "min": lambda a: a.min(axis=0),
        "max": lambda a: a.max(axis=0),
        "first": lambda a: a[0],
    }[spec.replicates]
    keys = list(groups)
    combined = np.asarray([reduce(np.asarray(groups[k], dtype=np.float64)) for k in keys])
    candidates = [first_row[k] for k in keys]
    parameters: list[Parameter] = []
    for c, n in zip(spec.inputs, names, strict=True):
        values = [cand[n] for cand in candidates]
        if c.kind == "categorical":
            choices = sorted(set(values))
            if len(choices) < 2:
                raise LoopError(
                    f"data file {label}: column '{c.column}' holds one value only ({choices[0]!r})",
                    "drop that input from the spec: it cannot inform the planner",
                )
            parameters.append(CategoricalParameter(name=n, choices=choices))
            continue
        lo, hi = min(values), max(values)
        if lo == hi:
            raise LoopError(
                f"data file {label}: column '{c.column}' is constant ({lo:g})",
                "drop that input from the spec: it cannot inform the planner",
            )
        if c.kind == "int":
            parameters.append(IntParameter(name=n, low=int(lo), high=int(hi)))
        else:
            parameters.append(FloatParameter(name=n, low=float(lo), high=float(hi)))
    return Dataset(
        spec=spec,
        source=label,
        parameters=parameters,
        columns={n: c.column for n, c in zip(names, spec.inputs, strict=True)},
        candidates=candidates,
        y=combined[:, 0].copy(),
        outcomes=combined[:, 1:].copy(),
        n_rows=n_rows,
    )
