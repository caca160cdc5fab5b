"""Campaign operations: create from a spec file, list, show, update the live settings."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db import CampaignRecord, crud
from db.queue import lock_campaign
from loop.errors import ConflictError, LoopError, SpecError
from loop.space import check_params
from loop.spec import (
    CampaignSpec,
    CategoricalParameter,
    FloatParameter,
    load_spec,
    parse_spec,
)

__all__ = [
    "create_campaign",
    "create_campaign_from_spec",
    "load_campaign_spec",
    "prepare_campaign_spec",
    "read_pool",
    "composition_pool",
    "update_campaign",
    "check_model_names",
    "UPDATABLE",
]

#: Settings of a live campaign that `loop campaign update` may change.
UPDATABLE = ("budget", "batch_size", "surrogate", "acquisition", "initial_design")


def check_model_names(spec: CampaignSpec, source: str = "") -> None:
    """Raise `SpecError` if the surrogate or acquisition (or their options) are unknown.

    Args:
        source: The spec file or campaign, named at the start of the message.
    """
    from acquisition import UnknownAcquisitionError, check_acquisition
    from surrogates import SURROGATES, UnknownSurrogateError, load_builtin, make_surrogate

    load_builtin()
    where = f"{source}: " if source else ""
    try:
        surrogate = make_surrogate(spec.model.surrogate, spec.model.surrogate_options)
        check_acquisition(spec.model.acquisition, spec.model.acquisition_options)
    except (UnknownSurrogateError, UnknownAcquisitionError) as err:
        raise SpecError(f"{where}model: {err}", "fix [model] in the spec") from None
    graphs = [n for n, cls in sorted(SURROGATES.items()) if cls.needs_structures]
    if surrogate.needs_structures and spec.structures is None:
        raise SpecError(
            f"{where}model: surrogate '{spec.model.surrogate}' reads crystal structures, but "
            "the campaign has no [structures] pool",
            "add a [structures] table, or choose a surrogate for this space",
        )
    needs_images = bool(getattr(surrogate, "needs_images", False))
    cnns = [n for n, cls in sorted(SURROGATES.items()) if getattr(cls, "needs_images", False)]
    if needs_images and spec.microstructures is None:
        raise SpecError(
            f"{where}model: surrogate '{spec.model.surrogate}' reads voxel images, but the "
            "campaign has no [microstructures] pool",
            "add a [microstructures] table, or choose a surrogate for this space",
        )
    if spec.microstructures is not None and not needs_images:
        raise SpecError(
            f"{where}model: a [microstructures] campaign needs an image surrogate; "
            f"'{spec.model.surrogate}' would only see the image's index in the stack",
            f"set [model] surrogate to one of {', '.join(cnns)}",
        )
    if spec.structures is not None and not surrogate.needs_structures:
        raise SpecError(
            f"{where}model: a [structures] campaign needs a crystal-graph surrogate; "
            f"'{spec.model.surrogate}' would only see the structure's index in the pool",
            f"set [model] surrogate to one of {', '.join(graphs)}",
        )


def read_pool(
    spec: CampaignSpec, base_dir: Path
) -> tuple[CampaignSpec, list[tuple[str | None, dict[str, Any]]]]:
    """Read a spec's candidate pool; identical rows become one candidate.

    Returns:
        The spec with the pool's parameters filled in (inferred from the data where the spec
        declares none) and the `(key, params)` rows in file order.
    """
    assert spec.pool is not None
    path = Path(spec.pool.path)
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise SpecError(
            f"pool file {path} does not exist",
            "fix pool.path (relative paths start at the spec file's folder)",
        )
    cmap = spec.pool.column_map()
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [
            c
            for c in list(cmap.values()) + ([spec.pool.key] if spec.pool.key else [])
            if c not in header
        ]
        if missing:
            raise SpecError(
                f"{path}: pool columns {missing} are not in the file",
                f"the file's columns are: {', '.join(header)}",
            )
        raw = [(i + 2, row) for i, row in enumerate(reader)]
    if not raw:
        raise SpecError(f"{path}: the pool file has no rows", "add candidate rows")
    declared = {p.name: p for p in spec.parameters}
    values: dict[str, list[Any]] = {name: [] for name in cmap}
    for line, row in raw:
        for name, col in cmap.items():
            text = (row.get(col) or "").strip()
            p = declared.get(name)
            if isinstance(p, CategoricalParameter):
                values[name].append(text)
                continue
            try:
                v: Any = float(text)
                if not math.isfinite(v):
                    raise ValueError
            except ValueError:
                if p is not None:
                    raise SpecError(
                        f"{path}, line {line}, column '{col}': {text!r} is not a number",
                        "fix the value or declare the parameter categorical",
                    ) from None
                v = text
            values[name].append(v)
    params_out = []
    if declared:
        params_out = list(spec.parameters)
    else:
        for name, col in cmap.items():
            vs = values[name]
            if all(isinstance(v, float) for v in vs):
                lo, hi = min(vs), max(vs)
                if lo == hi:
                    raise SpecError(
                        f"{path}: column '{col}' is constant ({lo:g}) in the pool",
                        f"drop '{name}' from pool.columns",
                    )
                params_out.append(FloatParameter(name=name, low=lo, high=hi))
            else:
                choices = sorted({str(v) for v in vs})
                params_out.append(CategoricalParameter(name=name, choices=choices))
    raw_json = spec.model_dump(mode="json", exclude_none=True)
    raw_json["parameters"] = [p.model_dump(mode="json") for p in params_out]
    resolved = parse_spec(raw_json, str(path))
    seen: dict[tuple[Any, ...], int] = {}
    rows: list[tuple[str | None, dict[str, Any]]] = []
    problems = []
    for k, (line, row) in enumerate(raw):
        params = {name: values[name][k] for name in cmap}
        coerced, errs = check_params(resolved, params)
        if errs:
            problems += [f"line {line}: {e}" for e in errs]
            continue
        ident = tuple(sorted(coerced.items()))
        if ident in seen:
            continue
        seen[ident] = len(rows)
        rows.append(((row.get(spec.pool.key) or None) if spec.pool.key else None, coerced))
    if problems:
        raise SpecError(
            f"{path}: {len(problems)} pool values break the declared parameters: "
            + "; ".join(problems[:10]),
            "fix the pool file or the parameter bounds",
        )
    return resolved, rows


def read_microstructures(
    spec: CampaignSpec,
) -> tuple[CampaignSpec, list[tuple[str | None, dict[str, Any]]]]:
    """The image stack of a `[microstructures]` spec as candidates `{name: index}`, and the spec
    with its derived integer parameter.

    Raises:
        SpecError: The file is missing or holds no valid image stack (named by image index).
    """
    from loop.microgen import load_images
    from loop.spec import IntParameter

    ms = spec.microstructures
    assert ms is not None
    try:
        images = load_images(ms.path, ms.key)
    except LoopError as err:
        raise SpecError(f"[microstructures] {err.message}", err.hint) from None
    n = len(images)
    if n < 2:
        raise SpecError(
            f"[microstructures] {ms.path} holds {n} image(s); a campaign needs 2 or more",
            "add images to the stack",
        )
    raw = spec.model_dump(mode="json", exclude_none=True)
    raw["parameters"] = [IntParameter(name=ms.name, low=0, high=n - 1).model_dump(mode="json")]
    rows: list[tuple[str | None, dict[str, Any]]] = [(str(i), {ms.name: i}) for i in range(n)]
    return parse_spec(raw, f"spec of '{spec.name}'"), rows


def composition_pool(spec: CampaignSpec) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """The `(formula, fractions)` candidates of a `[compositions]` spec, one at a time.

    The fractions are keyed by element symbol over all elements of the space (zeros included),
    which is how the spec's derived composition parameter reads them.
    """
    assert spec.compositions is not None
    yield from spec.compositions.space()


def load_campaign_spec(
    path: str | Path,
) -> tuple[CampaignSpec, Iterable[tuple[str | None, dict[str, Any]]] | None]:
    """Read a spec file, resolve its paths and read its pool (if any).

    Returns:
        The resolved spec and its pool: a list for a `[pool]` file, a lazy iterator for
        `[compositions]` (enumerated while it is stored), None for a space of parameters.
    """
    p = Path(path)
    return prepare_campaign_spec(load_spec(p), p.resolve().parent, str(p))


def prepare_campaign_spec(
    spec: CampaignSpec, base: Path, source: str
) -> tuple[CampaignSpec, Iterable[tuple[str | None, dict[str, Any]]] | None]:
    """Resolve a validated spec's relative paths against `base` and read its pool (if any).

    `source` names the spec in error messages (its file, or the HTTP request).
    """
    raw = spec.model_dump(mode="json", exclude_none=True)
    sim = raw.get("simulator")
    if sim and isinstance(sim.get("options", {}).get("path"), str):
        sp = sim["options"]["path"]
        if not sp.startswith("package:") and not Path(sp).is_absolute():
            sim["options"]["path"] = str((base / sp).resolve())
    if spec.pool is not None:
        raw["pool"]["path"] = (
            str((base / spec.pool.path).resolve())
            if not Path(spec.pool.path).is_absolute()
            else spec.pool.path
        )
    st = spec.structures
    if st is not None and st.path is not None and not Path(st.path).is_absolute():
        raw["structures"]["path"] = str((base / st.path).resolve())
    if st is not None and st.substitute is not None:
        raw["structures"]["substitute"]["prototypes"] = [
            p if p == "perovskite" or Path(p).is_absolute() else str((base / p).resolve())
            for p in st.substitute.prototypes
        ]
    mst = spec.microstructures
    if mst is not None and not Path(mst.path).is_absolute():
        raw["microstructures"]["path"] = str((base / mst.path).resolve())
    if spec.hull is not None and spec.hull.references_file is not None:
        raw["hull"]["references"] = _read_references(spec.hull.references_file, base) + list(
            raw["hull"].get("references", [])
        )
        raw["hull"].pop("references_file")
    spec = parse_spec(raw, source)
    check_model_names(spec, source)
    if spec.hull is not None:
        from loop.hull import HullError, ReferenceHull

        try:
            ReferenceHull(spec.hull.references)
        except HullError as err:
            raise SpecError(f"{source}: hull.references: {err.message}", err.hint) from None
    if spec.compositions is not None:
        return spec, composition_pool(spec)
    if spec.structures is not None:
        from loop.structpool import read_structures

        return read_structures(spec, base)
    if spec.microstructures is not None:
        return read_microstructures(spec)
    if spec.pool is None:
        return spec, None
    return read_pool(spec, base)


def _read_references(name: str, base: Path) -> list[list[Any]]:
    """`[formula, energy_per_atom]` pairs of a references CSV file."""
    path = Path(name) if Path(name).is_absolute() else base / name
    if not path.is_file():
        raise SpecError(
            f"hull.references_file {path} does not exist",
            "fix the path (relative paths start at the spec file's folder)",
        )
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not {"formula", "energy_per_atom"} <= set(reader.fieldnames or []):
            raise SpecError(
                f"{path}: needs columns formula and energy_per_atom (has {reader.fieldnames})",
                "rename the columns",
            )
        out: list[list[Any]] = []
        for line, row in enumerate(reader, start=2):
            try:
                e = float(row["energy_per_atom"])
            except ValueError:
                e = math.nan
            if not math.isfinite(e):
                raise SpecError(
                    f"{path}, line {line}, column 'energy_per_atom': "
                    f"{row['energy_per_atom']!r} is not a number",
                    "give the energy per atom in eV/atom",
                )
            out.append([row["formula"].strip(), e])
    return out


def create_campaign_from_spec(
    *,
    session: Session,
    spec: CampaignSpec,
    candidates: Iterable[tuple[str | None, dict[str, Any]]] | None,
    name: str | None = None,
) -> CampaignRecord:
    """Store a validated campaign (and its pool) under `name` (default: the spec's name).

    `candidates` may be a generator; it is stored in chunks. A `[compositions]` spec given no
    candidates has its space enumerated here.
    """
    if name is not None and name != spec.name:
        raw = spec.model_dump(mode="json", exclude_none=True)
        raw["name"] = name
        spec = parse_spec(raw)
    if crud.campaign_exists(session=session, name=spec.name):
        raise ConflictError(
            f"a campaign named '{spec.name}' already exists",
            "choose another name with --name, or use the existing campaign",
        )
    if spec.latent is not None:
        from loop.gan import load_gan

        gen = load_gan(session=session, name=spec.latent.gan)
        if gen.config.latent != spec.latent.size:
            raise SpecError(
                f"[latent] size = {spec.latent.size}, but GAN '{spec.latent.gan}' has a "
                f"{gen.config.latent} x {gen.config.latent} latent map",
                f"set [latent] size = {gen.config.latent}",
            )
    rec = crud.create_campaign(session=session, name=spec.name, spec=spec.to_json())
    n = 0
    if candidates is None and spec.compositions is not None:
        candidates = composition_pool(spec)
    if candidates is not None:
        n = crud.add_candidates(session=session, campaign_id=rec.id, rows=candidates)
        if n == 0 and spec.compositions is not None:
            cs = spec.compositions
            raise SpecError(
                f"no composition of {cs.elements} (step {cs.step:g}) is charge-balanced, so "
                f"the pool of '{spec.name}' would be empty",
                "add elements that balance the others (an anion such as O or F), "
                "or set compositions.charge_balanced = false",
            )
    crud.add_event(
        session=session,
        campaign_id=rec.id,
        kind="campaign_created",
        payload={"spec_version": 1, "candidates": n},
    )
    return rec


def create_campaign(
    *, session: Session, path: str | Path, name: str | None = None
) -> CampaignRecord:
    """Create a campaign from a TOML spec file."""
    spec, candidates = load_campaign_spec(path)
    return create_campaign_from_spec(session=session, spec=spec, candidates=candidates, name=name)


def update_campaign(*, session: Session, name: str, changes: dict[str, Any]) -> CampaignRecord:
    """Change budget, batch size, initial design, surrogate or acquisition of a live campaign.

    Each change is a new spec version; the history is kept.
    """
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise LoopError(
            f"cannot change {sorted(unknown)} of a live campaign",
            f"changeable: {', '.join(UPDATABLE)}",
        )
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise LoopError(
            "nothing to change",
            "give at least one of --budget, --batch-size, "
            "--initial-design, --surrogate, --acquisition",
        )
    rec = crud.get_campaign(session=session, name=name)
    # the budget check below must see every batch proposed so far
    lock_campaign(session=session, campaign_id=rec.id, kind="propose")
    raw = dict(rec.spec)
    model = dict(raw.get("model", {}))
    for k, v in changes.items():
        if k in ("surrogate", "acquisition"):
            if model.get(k) != v:
                model[f"{k}_options"] = {}
            model[k] = v
        else:
            raw[k] = v
    raw["model"] = model
    spec = parse_spec(raw, f"campaign '{name}'")
    check_model_names(spec, f"campaign '{name}'")
    used = sum(
        n
        for s, n in crud.count_proposals_by_status(session=session, campaign_id=rec.id).items()
        if s != "abandoned"
    )
    if spec.budget < used:
        raise SpecError(
            f"budget {spec.budget} is below the {used} experiments already proposed",
            f"give a budget of at least {used}",
        )
    note = ", ".join(f"{k}={v}" for k, v in changes.items())
    out = crud.update_campaign_spec(
        session=session, campaign_id=rec.id, spec=spec.to_json(), note=note
    )
    if rec.status == "completed" and spec.budget > used:
        crud.set_campaign_status(session=session, campaign_id=rec.id, status="active")
    crud.add_event(
        session=session,
        campaign_id=rec.id,
        kind="spec_updated",
        payload={"version": out.spec_version, "changes": changes},
    )
    return out
