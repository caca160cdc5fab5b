"""Composition tables (formula -> target) for surrogate benchmarks: reading, checking, splitting.

A table is any CSV file with a formula column and a numeric target column. Every row is checked
before anything is trained; bad rows are named by their file line (the header is line 1).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from loop.errors import LoopError

if TYPE_CHECKING:
    import torch

__all__ = [
    "SplitKind",
    "CompositionTable",
    "Split",
    "load_composition_table",
    "make_splits",
]

SplitKind = Literal["kfold", "group-kfold", "fixed"]

_SHOW = 10  # bad rows quoted in a message


@dataclass(frozen=True)
class CompositionTable:
    """The usable rows of a composition table.

    Attributes:
        X: `n x 86` float32 element fractions (ElemNet's layout).
        y: `n` float64 targets.
        lines: `n` file line numbers of the rows (the header is line 1).
        groups: `n` reduced formulas (`Composition(f).reduced_formula`), for grouped splits.
        rows_read: Data rows in the file (blank lines not counted).
        dropped: Reason -> rows dropped for it (bad rows when skipped, `|target|` above a limit,
            rows left out by a random `limit`).
    """

    path: str
    sha256: str
    input_column: str
    target_column: str
    formulas: list[str]
    X: torch.Tensor
    y: np.ndarray
    lines: np.ndarray
    groups: list[str]
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)
    #: Crystal graphs of the rows (a `GraphStore`, row order) when the table holds structures;
    #: crystal-graph surrogates read them, the others the compositions in `X`.
    graphs: Any = None

    def __len__(self) -> int:
        return len(self.formulas)

    def describe(self) -> dict[str, object]:
        """The JSON summary of the table stored with the results."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "input": self.input_column,
            "target": self.target_column,
            "rows_read": self.rows_read,
            "dropped": dict(self.dropped),
            "rows_used": len(self),
        }


def _column(header: list[str], name: str, option: str, label: str) -> int:
    hits = [i for i, h in enumerate(header) if h == name.strip()]
    if not hits:
        raise LoopError(
            f"data file {label} has no column '{name}' (named by {option}); its columns are: "
            f"{', '.join(repr(h) for h in header)}",
            f"pass {option} with one of the file's column names",
        )
    if len(hits) > 1:
        raise LoopError(
            f"data file {label} has {len(hits)} columns named '{name}' (named by {option})",
            "rename the duplicate columns in the file",
        )
    return hits[0]


def load_composition_table(
    path: str | Path,
    *,
    input_column: str,
    target_column: str,
    skip_bad_rows: bool = False,
    drop_abs_above: float | None = None,
    limit: int | None = None,
    limit_seed: int = 0,
) -> CompositionTable:
    """Read, check and featurize a formula/target CSV file.

    Order: every row is checked; bad rows raise (or are dropped with `skip_bad_rows`); rows with
    `|target| > drop_abs_above` are dropped; then `limit` rows are drawn at random
    (`numpy.random.default_rng(limit_seed)`), kept in file order.

    Raises:
        LoopError: A missing or unreadable file, a missing column, bad rows (each named by file
            line, column and reason; the first ten quoted, with the count), or no rows left.
    """
    from surrogates.featurizers import ELEMNET_ELEMENTS, CompositionError, parse_composition

    label = str(path)
    p = Path(path)
    if not p.is_file():
        raise LoopError(f"data file {label} does not exist", "check the path given to --data")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LoopError(
            f"data file {label} is not UTF-8 text ({err})", "save the table as a UTF-8 CSV file"
        ) from None
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None:
        raise LoopError(f"data file {label} is empty", "give a CSV file with a header row")
    header = [h.strip() for h in first]
    i_in = _column(header, input_column, "--input", label)
    i_y = _column(header, target_column, "--target", label)

    index = {e: k for k, e in enumerate(ELEMNET_ELEMENTS)}
    parsed: dict[str, tuple[list[tuple[int, float]], str] | str] = {}  # formula -> fracs or reason
    formulas: list[str] = []
    targets: list[float] = []
    lines: list[int] = []
    problems: list[str] = []
    reasons: dict[str, int] = {}
    rows_read = 0
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue
        rows_read += 1
        if len(row) <= max(i_in, i_y):
            problems.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
            reasons["short row"] = reasons.get("short row", 0) + 1
            continue
        formula = row[i_in].strip()
        cell = row[i_y].strip()
        bad: list[str] = []
        if formula not in parsed:
            try:
                comp = parse_composition(formula)
                total = float(comp.num_atoms)
                fr = [(index[el.symbol], float(a) / total) for el, a in comp.items()]
                parsed[formula] = (fr, comp.reduced_formula)
            except CompositionError as err:
                parsed[formula] = err.reason
        if isinstance(parsed[formula], str):
            bad.append(f"column '{header[i_in]}' = {formula!r}: {parsed[formula]}")
            reasons["bad formula"] = reasons.get("bad formula", 0) + 1
        try:
            y = float(cell)
        except ValueError:
            y = math.nan
        if not math.isfinite(y):
            what = "empty" if not cell else f"{cell!r} is not a finite number"
            bad.append(f"column '{header[i_y]}': {what}")
            reasons["bad target"] = reasons.get("bad target", 0) + 1
        if bad:
            problems.append(f"line {line}: " + "; ".join(bad))
            continue
        formulas.append(formula)
        targets.append(y)
        lines.append(line)

    dropped: dict[str, int] = {}
    if problems:
        if not skip_bad_rows:
            shown = "\n".join(f"  - {p}" for p in problems[:_SHOW])
            more = f"\n  ... and {len(problems) - _SHOW} more" if len(problems) > _SHOW else ""
            raise LoopError(
                f"data file {label}: {len(problems)} of {rows_read} data rows are bad "
                f"(file line numbers; the header is line 1):\n{shown}{more}",
                "fix or delete those rows, or pass --skip-bad-rows to drop them",
            )
        dropped.update({f"bad rows ({k})": v for k, v in sorted(reasons.items())})

    y_arr = np.asarray(targets, dtype=np.float64)
    keep = np.arange(len(formulas))
    if drop_abs_above is not None:
        over = np.abs(y_arr) > drop_abs_above
        dropped[f"|{target_column}| > {drop_abs_above:g}"] = int(over.sum())
        keep = keep[~over]
    if limit is not None:
        if limit < 1:
            raise LoopError(f"--limit must be at least 1, got {limit}", "pass --limit 300 or more")
        if limit < len(keep):
            rng = np.random.default_rng(limit_seed)
            chosen = np.sort(rng.choice(len(keep), size=limit, replace=False))
            dropped["left out by --limit"] = int(len(keep) - limit)
            keep = keep[chosen]
    if len(keep) == 0:
        raise LoopError(
            f"data file {label} has no usable rows ({rows_read} read, dropped: {dropped})",
            "check --input, --target and --drop-abs-above",
        )

    import torch

    X = torch.zeros(len(keep), len(ELEMNET_ELEMENTS), dtype=torch.float32)
    groups: list[str] = []
    kept_formulas = [formulas[k] for k in keep]
    for r, f in enumerate(kept_formulas):
        entry = parsed[f]
        assert not isinstance(entry, str)  # bad rows never get here
        fr, reduced = entry
        for j, v in fr:
            X[r, j] = v
        groups.append(reduced)
    return CompositionTable(
        path=label,
        sha256=hashlib.sha256(data).hexdigest(),
        input_column=header[i_in],
        target_column=header[i_y],
        formulas=kept_formulas,
        X=X,
        y=y_arr[keep],
        lines=np.asarray(lines, dtype=np.int64)[keep],
        groups=groups,
        rows_read=rows_read,
        dropped=dropped,
    )


@dataclass(frozen=True)
class Split:
    """One train/test split: row indices into the table(s) being benchmarked."""

    fold: int
    train: np.ndarray
    test: np.ndarray


def make_splits(
    n: int,
    *,
    kind: SplitKind,
    folds: int = 5,
    split_seed: int = 18012019,
    test_fraction: float = 0.2,
    groups: Sequence[str] | None = None,
) -> list[Split]:
    """Train/test splits of `n` rows.

    - `kfold`: sklearn `KFold(folds, shuffle=True, random_state=split_seed)` (matbench's
      protocol: 5 folds, random state 18012019).
    - `group-kfold`: rows sharing a group (a reduced formula: polymorphs) fall in one fold. The
      groups are shuffled with `split_seed`, then placed largest first (a stable sort, so equal
      sizes keep the shuffled order) into the fold with the fewest rows so far.
    - `fixed`: one split; `round(test_fraction * n)` rows drawn with `split_seed` are the test set.

    Raises:
        LoopError: Too few rows or groups for the folds, or a test fraction outside (0, 1).
    """
    if kind == "fixed":
        if not 0.0 < test_fraction < 1.0:
            raise LoopError(
                f"--test-fraction must lie in (0, 1), got {test_fraction}", "pass e.g. 0.2"
            )
        n_test = int(round(test_fraction * n))
        if n_test < 1 or n_test >= n:
            raise LoopError(
                f"--test-fraction {test_fraction} of {n} rows leaves no train or no test rows",
                "use more rows or another --test-fraction",
            )
        perm = np.random.default_rng(split_seed).permutation(n)
        return [Split(0, np.sort(perm[n_test:]), np.sort(perm[:n_test]))]
    if folds < 2:
        raise LoopError(f"--folds must be at least 2, got {folds}", "pass --folds 5")
    if kind == "kfold":
        from sklearn.model_selection import KFold

        if n < folds:
            raise LoopError(f"{n} rows cannot make {folds} folds", "use fewer --folds")
        kf = KFold(n_splits=folds, shuffle=True, random_state=split_seed)
        return [Split(k, tr, te) for k, (tr, te) in enumerate(kf.split(np.arange(n)))]
    if kind == "group-kfold":
        if groups is None or len(groups) != n:
            raise ValueError("group-kfold needs one group label per row")
        names, inverse = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
        if len(names) < folds:
            raise LoopError(
                f"{len(names)} distinct reduced formulas cannot make {folds} grouped folds",
                "use fewer --folds or --split kfold",
            )
        sizes = np.bincount(inverse, minlength=len(names))
        order = np.random.default_rng(split_seed).permutation(len(names))
        order = order[np.argsort(-sizes[order], kind="stable")]
        load = np.zeros(folds, dtype=np.int64)
        fold_of = np.empty(len(names), dtype=np.int64)
        for g in order:
            k = int(np.argmin(load))
            fold_of[g] = k
            load[k] += sizes[g]
        row_fold = fold_of[inverse]
        return [
            Split(k, np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k))
            for k in range(folds)
        ]
    raise LoopError(f"unknown split '{kind}'", "use --split kfold, group-kfold or fixed")


def load_structure_benchmark_table(
    path: Path, *, input_column: str, target_column: str, limit: int | None = None
) -> CompositionTable:
    """A CSV file with a CIF column or a JSON table of pymatgen structures, as a table whose rows
    carry both their crystal graph (`graphs`) and their composition (`X`), so crystal-graph and
    composition surrogates run on identical splits."""
    from loop.pretrained import load_structure_table_for_pretraining
    from surrogates.featurizers import featurize_formulas

    st = load_structure_table_for_pretraining(
        path, input_column=input_column, target_column=target_column, limit=limit
    )
    n = len(st)
    return CompositionTable(
        path=st.path,
        sha256=st.sha256,
        input_column=input_column,
        target_column=target_column,
        formulas=list(st.formulas),
        X=featurize_formulas(list(st.formulas)).float(),
        y=np.asarray(st.y, dtype=float),
        lines=np.arange(n) + 2,
        groups=list(st.formulas),
        rows_read=n,
        graphs=st.graphs,
    )
