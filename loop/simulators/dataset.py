"""The data-set oracle: replays a table of real measurements as a simulator.

Each row of a CSV file is one measurement: some columns are inputs (the parameters), others are
outputs (objectives and constrained outcomes). Rows with the same inputs are replicates. The
oracle answers a proposal by looking its inputs up in the table, so it only knows the table's
inputs: pair it with a `[pool]` read from the same file. This is the pool-based replay protocol
of Liang et al. 2021 (npj Comput. Mater. 7, 188).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from loop.errors import LoopError
from loop.simulators.base import Simulator, register_simulator

if TYPE_CHECKING:
    from loop.spec import CampaignSpec

__all__ = [
    "DatasetOptions",
    "DatasetSimulator",
    "InputKey",
    "input_key",
    "parse_number",
    "read_table_text",
    "table_rows",
    "PACKAGE_PREFIX",
]

#: A path starting with this prefix names a file inside the installed `loop/data/` folder.
PACKAGE_PREFIX = "package:"

#: Significant digits kept when matching input values, so that text round trips of floats match.
_DIGITS = 10

#: The identity of one distinct input row: its values rounded to 10 significant digits, in the
#: order of the `inputs` option.
InputKey = tuple[float, ...]

_OPTION_KEYS = ("path", "inputs", "outputs", "replicates")


def _round(x: float) -> float:
    return float(f"{x:.{_DIGITS}g}") + 0.0  # + 0.0 folds -0.0 into 0.0


def input_key(values: Iterable[float]) -> InputKey:
    """The lookup key of one input row.

    Args:
        values: Input values, in the order of the oracle's input names.

    Returns:
        The values rounded to 10 significant digits.
    """
    return tuple(_round(float(v)) for v in values)


def _column_map(value: Any, option: str) -> dict[str, str]:
    """A `name -> column` table from a dict, or a list meaning the same names."""
    if isinstance(value, list):
        value = {c: c for c in value}
    if not isinstance(value, Mapping) or not value:
        raise LoopError(
            f"dataset simulator option '{option}' must be a non-empty table of name -> CSV "
            f"column, got {value!r}",
            f'write for example {option} = {{ x = "x (unit)" }}',
        )
    bad = {k: v for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise LoopError(
            f"dataset simulator option '{option}' must map names to column names (strings); "
            f"got {bad!r}",
            "quote the column names",
        )
    return dict(value)


@dataclass(frozen=True)
class DatasetOptions:
    """Options of the data-set oracle.

    Attributes:
        path: CSV file; relative to the spec's folder, or `package:NAME` for a file shipped in
            `loop/data/`.
        inputs: Parameter name -> CSV column.
        outputs: Objective or outcome name -> CSV column.
        replicates: `"mean"` answers the average over rows with identical inputs; `"sample"`
            answers one of those rows at random.
    """

    path: str
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    replicates: Literal["mean", "sample"] = "mean"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise LoopError(
                f"dataset simulator option 'path' must be a file name, got {self.path!r}",
                'set path = "data/my_table.csv" (relative to the spec file)',
            )
        object.__setattr__(self, "inputs", _column_map(self.inputs, "inputs"))
        object.__setattr__(self, "outputs", _column_map(self.outputs, "outputs"))
        if self.replicates not in ("mean", "sample"):
            raise LoopError(
                f"dataset simulator option replicates = {self.replicates!r} is not known",
                'set replicates = "mean" (average replicate rows) or "sample" (pick one)',
            )
        both = sorted(set(self.inputs) & set(self.outputs))
        if both:
            raise LoopError(
                f"dataset simulator names {both} both as inputs and as outputs",
                "give inputs and outputs distinct names",
            )


def parse_number(cell: str, where: str, hint: str) -> float:
    """A finite float from a table cell, or a LoopError saying where the bad cell is."""
    try:
        x = float(cell)
    except ValueError:
        x = math.nan
    if not math.isfinite(x):
        raise LoopError(f"{where}: {cell!r} is not a finite number", hint)
    return x


def table_rows(reader: Any, width: int, label: str) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a CSV reader with their file line numbers.

    Raises:
        LoopError: A row has another number of fields than the header (`width`).
    """
    for row in reader:
        line = reader.line_num  # the file's line (a header counts)
        if not any(c.strip() for c in row):
            continue
        if len(row) != width:
            raise LoopError(
                f"data file {label}, line {line}: {len(row)} fields, but the header has {width}",
                "make every row have one value per header column",
            )
        yield line, row


def read_table_text(path: str, base_dir: Path | None) -> tuple[str, str]:
    """The text of the table and a label naming it in messages."""
    if path.startswith(PACKAGE_PREFIX):
        rel = path[len(PACKAGE_PREFIX) :].strip().lstrip("/")
        res = resources.files("loop") / "data"
        for part in rel.split("/"):
            res = res / part
        label = f"{path} (loop/data/{rel})"
        if not rel or not res.is_file():
            raise LoopError(
                f"data file {label} is not shipped with loop",
                "check the name after 'package:' against the files in loop/data/",
            )
        data = res.read_bytes()
    else:
        p = Path(path).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        label = str(p)
        if not p.is_file():
            raise LoopError(
                f"data file {label} does not exist",
                "relative paths are resolved against the folder of the spec file; fix 'path'",
            )
        data = p.read_bytes()
    try:
        # utf-8-sig drops the byte-order mark some spreadsheet exports put before the header
        return data.decode("utf-8-sig"), label
    except UnicodeDecodeError as err:
        raise LoopError(
            f"data file {label} is not UTF-8 text ({err})",
            "save the table as a UTF-8 CSV file",
        ) from None


class _Table:
    """The parsed file: replicate rows grouped by input key, in file order."""

    def __init__(
        self, text: str, label: str, inputs: dict[str, str], outputs: dict[str, str]
    ) -> None:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            raise LoopError(f"data file {label} is empty", "give a CSV file with a header row")
        header = [h.strip() for h in header]
        index: dict[str, int] = {}
        for option, table in (("inputs", inputs), ("outputs", outputs)):
            for name, col in table.items():
                hits = [i for i, h in enumerate(header) if h == col.strip()]
                if not hits:
                    raise LoopError(
                        f"data file {label} has no column '{col}' (named by {option}.{name}); "
                        f"its columns are: {', '.join(repr(h) for h in header)}",
                        f"fix the column name of '{name}' in the simulator's {option}",
                    )
                if len(hits) > 1:
                    raise LoopError(
                        f"data file {label} has {len(hits)} columns named '{col}' "
                        f"(named by {option}.{name})",
                        "rename the duplicate columns in the file",
                    )
                index[f"{option}.{name}"] = hits[0]
        in_idx = [index[f"inputs.{n}"] for n in inputs]
        out_idx = [index[f"outputs.{n}"] for n in outputs]
        in_names, out_names = list(inputs), list(outputs)

        def number(cell: str, line: int, col: int) -> float:
            return parse_number(
                cell,
                f"data file {label}, line {line}, column '{header[col]}'",
                "the dataset simulator reads numeric columns only; fix or drop that row",
            )

        self.first: dict[InputKey, dict[str, float]] = {}
        replicates: dict[InputKey, list[list[float]]] = {}
        n_rows = 0
        for line, row in table_rows(reader, len(header), label):
            x = [number(row[i], line, i) for i in in_idx]
            y = [number(row[i], line, i) for i in out_idx]
            key = input_key(x)
            if key not in replicates:
                replicates[key] = []
                self.first[key] = dict(zip(in_names, x, strict=True))
            replicates[key].append(y)
            n_rows += 1
        if n_rows == 0:
            raise LoopError(f"data file {label} has a header but no rows", "add measurements")
        self.n_rows = n_rows
        self.keys: list[InputKey] = list(replicates)
        #: `r x m` replicate values per key, `m` = number of outputs.
        self.values = {k: np.asarray(v, dtype=np.float64) for k, v in replicates.items()}
        self.means = {k: v.mean(axis=0) for k, v in self.values.items()}
        self.out_names = out_names


@register_simulator("dataset")
class DatasetSimulator(Simulator):
    """Replays a CSV table of measurements: a proposal is answered by the rows with its inputs.

    Args:
        options: Which file, columns and replicate rule to use.
        base_dir: Folder relative paths are resolved against (the spec file's folder); `None`
            means the working directory.
        directions: Objective name -> `"maximize"` or `"minimize"`, the defaults of
            `top_fraction_keys` and `best` (outputs not listed are maximized).

    Raises:
        LoopError: If the file is missing, lacks a column, or holds a value that is not a number.
    """

    def __init__(
        self,
        options: DatasetOptions,
        *,
        base_dir: Path | None = None,
        directions: Mapping[str, Literal["maximize", "minimize"]] | None = None,
    ) -> None:
        self.options = options
        text, self.source = read_table_text(options.path, base_dir)
        self._table = _Table(text, self.source, options.inputs, options.outputs)
        self._directions = dict(directions or {})

    # -- construction from a spec ------------------------------------------------------------
    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        spec: CampaignSpec | None = None,
        base_dir: Path | None = None,
    ) -> DatasetSimulator:
        """Build the oracle from a spec's `[simulator] options`.

        With a spec, omitted options default to the campaign's: `path` and `inputs` to the
        pool's file and columns, `outputs` to the objective and constraint names used as column
        names. The inputs must be the campaign's parameters and the outputs must cover its
        objectives and constraints.

        Args:
            options: `path`, `inputs`, `outputs`, `replicates`.
            spec: The campaign the oracle serves, or `None`.
            base_dir: Folder of the spec file.

        Returns:
            The oracle.

        Raises:
            LoopError: If an option is unknown, missing or does not fit the campaign.
        """
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise LoopError(
                f"unknown dataset simulator option(s) {unknown}",
                f"allowed options: {', '.join(_OPTION_KEYS)}",
            )
        opts = dict(options)
        if spec is not None:
            if spec.pool is not None:
                opts.setdefault("path", spec.pool.path)
                opts.setdefault("inputs", spec.pool.column_map())
            opts.setdefault("outputs", list(spec.outcome_names))
        if "path" not in opts:
            raise LoopError(
                "the dataset simulator needs option 'path' (the CSV file to replay)",
                'add path = "data/my_table.csv" to [simulator] options',
            )
        if "inputs" not in opts or "outputs" not in opts:
            missing = [k for k in ("inputs", "outputs") if k not in opts]
            raise LoopError(
                f"the dataset simulator needs option(s) {missing}",
                "map parameter names (inputs) and objective names (outputs) to CSV columns",
            )
        parsed = DatasetOptions(
            path=opts["path"],
            inputs=opts["inputs"],
            outputs=opts["outputs"],
            replicates=opts.get("replicates", "mean"),
        )
        directions: dict[str, Literal["maximize", "minimize"]] = {}
        if spec is not None:
            _check_against_spec(parsed, spec)
            directions = {o.name: o.direction for o in spec.objectives}
        return cls(parsed, base_dir=base_dir, directions=directions)

    # -- the table ---------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Parameter names, in the order of the key tuples."""
        return list(self.options.inputs)

    @property
    def output_names(self) -> list[str]:
        """Objective and outcome names that `measure` returns."""
        return list(self.options.outputs)

    @property
    def n_rows(self) -> int:
        """Number of rows (measurements) in the table, replicates included."""
        return self._table.n_rows

    def __len__(self) -> int:
        """Number of distinct inputs."""
        return len(self._table.keys)

    def keys(self) -> list[InputKey]:
        """Keys of the distinct inputs, in file order."""
        return list(self._table.keys)

    def key(self, params: Mapping[str, Any]) -> InputKey:
        """The lookup key of a proposal.

        Args:
            params: Values keyed by parameter name (extra keys are ignored).

        Raises:
            LoopError: If a parameter is missing or not a number.
        """
        missing = [n for n in self.input_names if n not in params]
        if missing:
            raise LoopError(
                f"the dataset oracle ({self.source}) needs parameters {missing}, got "
                f"{sorted(params)}",
                "propose with the same parameter names as the simulator's inputs",
            )
        values = []
        for n in self.input_names:
            v = params[n]
            try:
                if isinstance(v, bool):
                    raise TypeError
                values.append(float(v))
            except (TypeError, ValueError):
                raise LoopError(
                    f"parameter '{n}' = {v!r} is not a number; the dataset oracle "
                    f"({self.source}) only reads numeric inputs",
                    "pass numeric parameter values",
                ) from None
        return input_key(values)

    def _lookup(self, params: Mapping[str, Any]) -> InputKey:
        k = self.key(params)
        if k not in self._table.values:
            shown = {n: params[n] for n in self.input_names}
            raise LoopError(
                f"the dataset oracle only knows the {len(self)} inputs in {self.source}; "
                f"{shown} is not one of them",
                "propose from a [pool] read from the same file, or use a simulator that "
                "answers any point of the space",
            )
        return k

    def candidates(self) -> list[dict[str, Any]]:
        """The distinct inputs in file order, as dicts keyed by parameter name."""
        return [dict(self._table.first[k]) for k in self._table.keys]

    def replicates(self, params: Mapping[str, Any]) -> list[dict[str, float]]:
        """All rows measured at `params`, in file order.

        Raises:
            LoopError: If `params` is not an input of the table.
        """
        k = self._lookup(params)
        names = self._table.out_names
        return [dict(zip(names, map(float, row), strict=True)) for row in self._table.values[k]]

    def mean(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The average over the replicate rows at `params`.

        Raises:
            LoopError: If `params` is not an input of the table.
        """
        k = self._lookup(params)
        return dict(zip(self._table.out_names, map(float, self._table.means[k]), strict=True))

    def measure(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        """Answer a proposal from the table.

        Args:
            params: Values keyed by parameter name; must equal one of the table's inputs (to 10
                significant digits).
            rng: Picks the replicate row when `replicates = "sample"`; unused for `"mean"`.

        Returns:
            One value per output name.

        Raises:
            LoopError: If `params` is not an input of the table.
        """
        k = self._lookup(params)
        if self.options.replicates == "sample":
            rows = self._table.values[k]
            row = rows[int(rng.integers(len(rows)))]
        else:
            row = self._table.means[k]
        return dict(zip(self._table.out_names, map(float, row), strict=True))

    # -- targets for benchmarks --------------------------------------------------------------
    def _objective(
        self, objective: str | None, direction: Literal["maximize", "minimize"] | None
    ) -> tuple[int, float]:
        if objective is None:
            objective = next(
                (n for n in self._directions if n in self.options.outputs), self.output_names[0]
            )
        if objective not in self.options.outputs:
            raise LoopError(
                f"'{objective}' is not an output of the dataset oracle ({self.source})",
                f"use one of {self.output_names}",
            )
        direction = direction or self._directions.get(objective, "maximize")
        if direction not in ("maximize", "minimize"):
            raise LoopError(f"direction {direction!r} is not known", 'use "maximize" or "minimize"')
        return self.output_names.index(objective), 1.0 if direction == "maximize" else -1.0

    def _ranked(
        self, objective: str | None, direction: Literal["maximize", "minimize"] | None
    ) -> list[InputKey]:
        j, sign = self._objective(objective, direction)
        # stable sort: ties keep file order, so the result is the same on every run
        return sorted(self._table.keys, key=lambda k: -sign * self._table.means[k][j])

    def top_fraction_keys(
        self,
        frac: float = 0.05,
        objective: str | None = None,
        direction: Literal["maximize", "minimize"] | None = None,
    ) -> set[InputKey]:
        """The best `ceil(frac * len(self))` distinct inputs by replicate-averaged objective.

        This is the target set of Liang et al. 2021 (top 5% of the unique candidates).

        Args:
            frac: Fraction of the distinct inputs, in `(0, 1]`.
            objective: Output to rank by; defaults to the campaign's first objective, else the
                first output.
            direction: `"maximize"` or `"minimize"`; defaults to the objective's direction in
                the campaign, else maximize.

        Returns:
            Keys (see `key`) of the best inputs; ties at the boundary go to the earlier row.

        Raises:
            LoopError: If `frac` is out of range or `objective` is not an output.
        """
        if not (0.0 < frac <= 1.0):
            raise LoopError(f"frac must be in (0, 1], got {frac}", "use for example 0.05")
        n = math.ceil(frac * len(self) - 1e-9)  # 1e-9: 0.05 * 100 must give 5, not 6
        return set(self._ranked(objective, direction)[:n])

    def best(
        self,
        objective: str | None = None,
        direction: Literal["maximize", "minimize"] | None = None,
    ) -> tuple[dict[str, float], float]:
        """The best distinct input and its replicate-averaged objective value.

        Args:
            objective: As in `top_fraction_keys`.
            direction: As in `top_fraction_keys`.

        Returns:
            The input as a dict keyed by parameter name, and its mean objective value.
        """
        j, _ = self._objective(objective, direction)
        k = self._ranked(objective, direction)[0]
        return dict(self._table.first[k]), float(self._table.means[k][j])


def _expected_inputs(spec: CampaignSpec) -> list[str]:
    if spec.pool is not None:
        return list(spec.pool.column_map())
    names: list[str] = []
    for p in spec.parameters:
        elements = getattr(p, "elements", None)
        names += list(elements) if elements is not None else [p.name]
    return names


def _check_against_spec(options: DatasetOptions, spec: CampaignSpec) -> None:
    expected = _expected_inputs(spec)
    if set(options.inputs) != set(expected):
        raise LoopError(
            f"the dataset simulator's inputs {sorted(options.inputs)} are not the parameters "
            f"of campaign '{spec.name}' {sorted(expected)}",
            "name one CSV column in [simulator] options.inputs for each parameter",
        )
    missing = [n for n in spec.outcome_names if n not in options.outputs]
    if missing:
        raise LoopError(
            f"the dataset simulator has no output for {missing} of campaign '{spec.name}'",
            "map each objective and constraint to a CSV column in [simulator] options.outputs",
        )
