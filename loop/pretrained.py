"""Pretrained, named surrogates: train once on a large table, fine-tune in many campaigns.

The seed papers' answer to small materials data is transfer learning: an ElemNet trained on a
large DFT table (OQMD) already knows chemistry, and a few measurements of a campaign adapt it.
`pretrain` fits a composition surrogate on a formula/target table (or a CGCNN on a structure
table, `StructureTable`) and stores it as a model_fit row without a campaign (its name is
unique among pretrained models) with its checkpoint; a campaign names it with
`surrogate_options.pretrained = "NAME"`, and its first fit starts from those weights
(`loop.engine` passes the state as `warm_start`).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from db import ModelFitRecord, crud
from loop.errors import ConflictError, LoopError, NotFoundError

if TYPE_CHECKING:
    from loop.benchmark.surrogate_data import CompositionTable

__all__ = [
    "PRETRAINABLE",
    "STRUCTURE_PRETRAINABLE",
    "StructureTable",
    "load_structure_table_for_pretraining",
    "PretrainResult",
    "pretrain",
    "check_can_pretrain",
    "load_pretrained_state",
    "list_pretrained",
    "delete_pretrained",
]

#: Surrogates whose inputs are ElemNet's 86 element fractions, so their weights carry over to
#: any composition campaign.
PRETRAINABLE = ("elemnet-ensemble", "elemnet-dropout", "cgcnn-ensemble", "cgcnn-mcdropout")
#: Surrogates that read crystal graphs: pretrained on a structure table, their weights carry over
#: to any `[structures]` campaign (the graphs hold no pool-specific numbering).
STRUCTURE_PRETRAINABLE = ("cgcnn-ensemble", "cgcnn-mcdropout")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: Held-out predictions kept in the model_fit row (for parity and calibration plots).
KEEP_HELDOUT = 2000


@dataclass
class StructureTable:
    """Crystal structures and a target: what a CGCNN is pretrained on."""

    path: str
    sha256: str
    input_column: str
    target_column: str
    formulas: list[str]
    graphs: Any  # a GraphStore, in row order
    y: Any  # n float64 targets

    def __len__(self) -> int:
        return len(self.formulas)

    @property
    def X(self) -> Any:
        import torch

        return torch.arange(len(self), dtype=torch.float32).unsqueeze(-1)

    def describe(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "input": self.input_column,
            "target": self.target_column,
            "rows_used": len(self),
        }


def load_structure_table_for_pretraining(
    path: Path, *, input_column: str, target_column: str, limit: int | None = None
) -> StructureTable:
    """A CSV file with a CIF column or a JSON table of pymatgen structures, featurized."""
    from loop.benchmark.structures import load_structure_table
    from surrogates.crystal_graph import GraphCache, GraphStore

    structures, y = load_structure_table(
        [path], cif=input_column, target=target_column, limit=limit
    )
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return StructureTable(
        path=str(path),
        sha256=sha,
        input_column=input_column,
        target_column=target_column,
        formulas=[s.composition.reduced_formula for s in structures],
        graphs=GraphStore(GraphCache().graphs(structures)),
        y=y,
    )


@dataclass
class PretrainResult:
    """A stored pretrained model."""

    record: ModelFitRecord
    metrics: dict[str, Any]
    seconds: float


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise LoopError(
            f"pretrained model name {name!r} must start with a letter, digit or '_' and hold "
            "only letters, digits, '_', '.' or '-'",
            "choose a name such as oqmd-elemnet",
        )


def check_can_pretrain(
    *, session: Session, name: str, surrogate: str, replace: bool
) -> list[ModelFitRecord]:
    """Refuse a bad name, a surrogate that cannot be pretrained, or a taken name (unless
    `replace`) before any data is read; returns the fits `replace` would overwrite."""
    _check_name(name)
    if surrogate not in PRETRAINABLE:
        raise LoopError(
            f"surrogate '{surrogate}' cannot be pretrained for campaigns",
            f"use one of {', '.join(PRETRAINABLE)} (they read element fractions or crystal "
            "graphs, whose weights carry over between campaigns)",
        )
    existing = crud.named_model_fits(session=session, name=name)
    if existing and not replace:
        raise ConflictError(
            f"a pretrained model named '{name}' already exists (fit {existing[0].id}, "
            f"{existing[0].created_at:%Y-%m-%d %H:%M})",
            "choose another --name, or pass --replace to overwrite it",
        )
    return existing


def pretrain(
    *,
    session: Session,
    name: str,
    table: CompositionTable | StructureTable,
    surrogate: str = "elemnet-ensemble",
    options: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | None = None,
    artifact_dir: Path | str,
    replace: bool = False,
) -> PretrainResult:
    """Train `surrogate` on every row of `table` and store it as pretrained model `name`.

    Args:
        table: Formulas and targets (`loop.benchmark.surrogate_data.load_composition_table`).
        options: Surrogate options (`size`, `members`, `time_budget`, ...).
        replace: Replace an existing model of that name (its checkpoint file is deleted).

    Raises:
        ConflictError: A pretrained model called `name` exists and `replace` is false.
        LoopError: A surrogate that cannot be pretrained or bad options.
    """
    import torch

    from loop.engine import _metrics, _save_checkpoint
    from surrogates import UnknownSurrogateError, load_builtin, make_surrogate
    from surrogates.featurizers import ELEMNET_ELEMENTS

    existing = check_can_pretrain(session=session, name=name, surrogate=surrogate, replace=replace)
    load_builtin()
    try:
        sur = make_surrogate(surrogate, options or {})
    except UnknownSurrogateError as err:
        raise LoopError(str(err), "fix the --option values") from None
    if len(table) < 20:
        raise LoopError(
            f"{table.path}: {len(table)} usable rows are too few to pretrain on",
            "pretrain on a large table (thousands of rows); fine-tune in the campaign instead",
        )
    structures = isinstance(table, StructureTable)
    if structures != (surrogate in STRUCTURE_PRETRAINABLE):
        raise LoopError(
            f"surrogate '{surrogate}' reads "
            + ("crystal structures" if surrogate in STRUCTURE_PRETRAINABLE else "compositions")
            + f", but {table.path} was read as a "
            + ("structure" if structures else "composition")
            + " table",
            "pretrain a CGCNN on a CIF / pymatgen structure table and ElemNet on formulas",
        )
    t0 = time.perf_counter()
    X = table.X
    Y = torch.as_tensor(table.y, dtype=torch.float32).reshape(-1, 1)
    if isinstance(table, StructureTable):
        sur.set_structures(table.graphs)
        bounds = torch.tensor([[0.0], [float(len(table) - 1)]])
        names = None
    else:
        bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])])
        names = list(ELEMNET_ELEMENTS)
    fit = sur.fit(X, Y, bounds=bounds, seed=seed, input_names=names, device=device)
    k = fit.heldout_mean.shape[0]
    rows = fit.heldout_index.tolist() if fit.heldout_index is not None else list(range(len(table)))
    metrics: dict[str, Any] = {"n_train": len(table), "n_heldout": k, **fit.info}
    if k:
        y = torch.as_tensor(table.y[rows], dtype=torch.double)
        metrics[table.target_column] = _metrics(
            y, fit.heldout_mean[:, 0].double(), fit.heldout_std[:, 0].double()
        )
    heldout = [
        {
            "formula": table.formulas[r],
            "target": float(table.y[r]),
            "mean": float(fit.heldout_mean[i, 0]),
            "std": float(fit.heldout_std[i, 0]),
        }
        for i, r in enumerate(rows[:KEEP_HELDOUT])
    ]
    for old in existing:
        if old.checkpoint_path:
            Path(old.checkpoint_path).unlink(missing_ok=True)
        crud.delete_model_fit(session=session, fit_id=old.id)
    state = dict(fit.state)
    state["pretrained_on"] = {
        "path": table.path,
        "sha256": table.sha256,
        "target": table.target_column,
    }
    stem = f"{name}-{int(time.time() * 1000)}"
    path, sha = _save_checkpoint(state, Path(artifact_dir) / "pretrained", stem)
    settings = {
        **sur.settings(),
        "data": table.describe(),
        "seed": seed,
    }
    rec = crud.add_model_fit(
        session=session,
        campaign_id=None,
        name=name,
        kind=sur.kind,
        settings=settings,
        data_version=table.sha256[:32],
        metrics=_json_safe(metrics),
        heldout=heldout,
        checkpoint_path=path,
        checkpoint_sha256=sha,
    )
    crud.add_event(
        session=session,
        campaign_id=None,
        kind="pretrained",
        payload={"model_fit": rec.id, "name": name, "kind": sur.kind, "rows": len(table)},
    )
    return PretrainResult(rec, metrics, time.perf_counter() - t0)


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def list_pretrained(*, session: Session) -> list[ModelFitRecord]:
    """Every stored pretrained model, newest first."""
    return crud.named_model_fits(session=session)


def load_pretrained_state(*, session: Session, name: str) -> dict[str, Any]:
    """The checkpoint state of pretrained model `name`, checked against its sha256.

    Raises:
        NotFoundError: No such model (the message lists the stored ones) or its checkpoint file
            is missing or altered.
    """
    import torch

    fits = crud.named_model_fits(session=session, name=name)
    if not fits:
        known = sorted({f.name for f in crud.named_model_fits(session=session)})
        raise NotFoundError(
            f"no pretrained model named '{name}'"
            + (f"; stored: {', '.join(known)}" if known else "; none is stored"),
            "train one with `loop surrogate pretrain --name NAME --data FILE ...`",
        )
    fit = fits[0]
    p = Path(fit.checkpoint_path or "")
    if not fit.checkpoint_path or not p.is_file():
        raise NotFoundError(
            f"the checkpoint of pretrained model '{name}' is missing ({fit.checkpoint_path})",
            "pretrain it again with --replace, or point --artifacts at the folder that holds it",
        )
    data = p.read_bytes()
    if hashlib.sha256(data).hexdigest() != fit.checkpoint_sha256:
        raise NotFoundError(
            f"the checkpoint {p} of pretrained model '{name}' does not match its sha256",
            "the file was changed or replaced; pretrain it again with --replace",
        )
    return torch.load(io.BytesIO(data), weights_only=True)


def delete_pretrained(*, session: Session, name: str) -> int:
    """Delete pretrained model `name` and its checkpoint; returns how many fits went."""
    fits = crud.named_model_fits(session=session, name=name)
    if not fits:
        raise NotFoundError(f"no pretrained model named '{name}'", "see `loop surrogate list`")
    for f in fits:
        if f.checkpoint_path:
            Path(f.checkpoint_path).unlink(missing_ok=True)
        crud.delete_model_fit(session=session, fit_id=f.id)
    return len(fits)
