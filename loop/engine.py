"""The propose side of the loop: fit a surrogate on what was measured and pick the next batch.

One call is one transaction: the model fit (if new) and the proposals are written together.
torch and BoTorch are imported here, so callers import this module only when they propose.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session

from acquisition import (
    AcquisitionContext,
    UnknownAcquisitionError,
    UnsupportedPoolAcquisition,
    build_acquisition,
    optimize_box,
    optimize_pool,
    select_from_pool,
)
from acquisition.pool import distinct_rows
from db import MeasurementRecord, ModelFitRecord, NewProposal, ProposalRecord, crud
from db.queue import campaign_fingerprint, lock_campaign, locks_writers
from loop.errors import BudgetError, LoopError
from loop.space import DesignSpace
from loop.spec import CampaignSpec, parse_spec
from surrogates import (
    FitResult,
    Surrogate,
    UnknownSurrogateError,
    load_builtin,
    make_surrogate,
)

__all__ = [
    "ProposeResult",
    "propose",
    "budget_state",
    "choose_from_pool",
    "choose_in_space",
    "make_campaign_surrogate",
    "KEEP_CHECKPOINTS",
]

#: Checkpoints kept per campaign; older ones are deleted (their metadata stays).
KEEP_CHECKPOINTS = 5
PENDING = ("proposed", "running")
#: Pool candidates predicted per model call in a proposal round.
POOL_CHUNK = 16384
#: GP pools up to this size (after dropping repeats) go through BoTorch's greedy. The cached
#: path draws joint samples over the whole shortlist, so each candidate's own samples carry
#: Monte Carlo noise of their own; BoTorch's per-candidate batches share base samples, which
#: ranks single candidates consistently. On the five Liang et al. sets the joint-sample path
#: lost AF at 80% on agnp (5.46 -> 4.75) and missed 80% on 1-3 of 20 seeds of p3ht and
#: perovskite (docs/benchmarks.md); above this size BoTorch's greedy costs minutes.
GP_EXACT_POOL = 4096
#: Space-filling points scored to start the gradient search in continuous and mixed spaces.
RAW_SAMPLES = 512


@dataclass
class ProposeResult:
    """What one propose call wrote."""

    campaign: str
    batch: int
    strategy: str
    proposals: list[ProposalRecord]
    model_fit: ModelFitRecord | None = None
    fit_reused: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def budget_state(spec: CampaignSpec, counts: dict[str, int]) -> tuple[int, int]:
    """`(used, remaining)` experiments: every proposal except abandoned ones counts."""
    used = sum(n for s, n in counts.items() if s != "abandoned")
    return used, max(0, spec.budget - used)


def _target_reached(spec: CampaignSpec, ms: list[MeasurementRecord]) -> float | None:
    if spec.stop is None or not ms:
        return None
    name = spec.stop.objective or spec.objectives[0].name
    obj = next(o for o in spec.objectives if o.name == name)
    vals = [m.values[name] for m in ms if name in m.values]
    if not vals:
        return None
    best = max(vals) if obj.direction == "maximize" else min(vals)
    hit = best >= spec.stop.target if obj.direction == "maximize" else best <= spec.stop.target
    return best if hit else None


def _data_version(spec: CampaignSpec, ms: list[MeasurementRecord]) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            [spec.outcome_names, [p.model_dump(mode="json") for p in spec.parameters]],
            sort_keys=True,
        ).encode()
    )
    for m in ms:
        h.update(f"{m.id},".encode())
    return h.hexdigest()[:32]


def _training_data(
    spec: CampaignSpec, space: DesignSpace, ms: list[MeasurementRecord]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`n x d` inputs, `n x m` outputs (objectives in maximization sense, then constrained
    outcomes), optional noise."""
    X = space.encode([m.params for m in ms])
    cols = [[o.sign * float(m.values[o.name]) for m in ms] for o in spec.objectives]
    cols += [[float(m.values[c.name]) for m in ms] for c in spec.constraints]
    Y = torch.tensor(cols, dtype=torch.double).T
    names = spec.outcome_names
    if all(all(n in m.stds for n in names) for m in ms):
        Yvar = torch.tensor(
            [[float(m.stds[n]) ** 2 for n in names] for m in ms], dtype=torch.double
        )
    else:
        Yvar = None
    return X, Y, Yvar


def _metrics(y: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor) -> dict[str, float | None]:
    err = mu - y
    n = y.numel()
    var_y = float(((y - y.mean()) ** 2).sum())
    sd = sd.clamp_min(1e-12)
    z90 = 1.6448536269514722
    nll = 0.5 * math.log(2 * math.pi) + torch.log(sd) + 0.5 * (err / sd) ** 2
    return {
        "n": n,
        "rmse": float(err.pow(2).mean().sqrt()),
        "mae": float(err.abs().mean()),
        # None, not NaN, when the values are all equal: PostgreSQL's json rejects NaN
        "r2": 1.0 - float(err.pow(2).sum()) / var_y if var_y > 0 else None,
        "coverage90": float((err.abs() <= z90 * sd).double().mean()),
        "nll": float(nll.mean()),
    }


def _save_checkpoint(state: dict[str, Any], directory: Path, stem: str) -> tuple[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    path = directory / f"{stem}.pt"
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def _load_checkpoint(fit: ModelFitRecord) -> dict[str, Any] | None:
    if not fit.checkpoint_path:
        return None
    p = Path(fit.checkpoint_path)
    if not p.is_file():
        return None
    data = p.read_bytes()
    if hashlib.sha256(data).hexdigest() != fit.checkpoint_sha256:
        return None  # a damaged or replaced file is refitted, never trusted
    return torch.load(io.BytesIO(data), weights_only=True)


def _prune_checkpoints(session: Session, campaign_id: int, keep: int) -> None:
    for old in crud.fits_with_checkpoints(session=session, campaign_id=campaign_id)[keep:]:
        if old.checkpoint_path:
            Path(old.checkpoint_path).unlink(missing_ok=True)
        crud.clear_checkpoint(session=session, fit_id=old.id)


def propose(
    *,
    session: Session,
    name: str,
    n: int | None = None,
    seed: int | None = None,
    artifact_dir: Path | str,
    keep_checkpoints: int = KEEP_CHECKPOINTS,
    device: str | None = None,
) -> ProposeResult:
    """Propose the next batch of campaign `name`.

    Args:
        n: Batch size (default: the spec's batch size), capped by the remaining budget and pool.
        seed: Base seed; default derived from the campaign name, so a run is reproducible.
        artifact_dir: Where model checkpoints go.
        keep_checkpoints: Checkpoint files kept per campaign (older fits keep their metadata).
        device: Where neural surrogates train (`cpu` or `cuda`); `None` picks CUDA when present.

    Raises:
        BudgetError: The budget is spent, the stop target is reached or the pool is exhausted.
        LoopError: The spec asks for something propose cannot do (several objectives).
    """
    t0 = time.perf_counter()
    rec = crud.get_campaign(session=session, name=name)
    # One batch at a time per campaign: the next batch sees this one as pending. Where the lock
    # stops every writer of the database (SQLite), the batch is chosen without it and the lock
    # is taken just before writing; if the campaign changed meanwhile, the batch is chosen
    # again, this time under the lock.
    if not locks_writers(session):
        lock_campaign(session=session, campaign_id=rec.id, kind="propose")
        return _propose(session, name, n, seed, Path(artifact_dir), keep_checkpoints, device, t0)
    try:
        return _propose(
            session, name, n, seed, Path(artifact_dir), keep_checkpoints, device, t0, True
        )
    except _Changed:
        # the write lock is held from here on, so nothing changes under the second choice
        return _propose(session, name, n, seed, Path(artifact_dir), keep_checkpoints, device, t0)


class _Changed(Exception):
    """The campaign changed while a batch was being chosen without its lock."""


def _propose(
    session: Session,
    name: str,
    n: int | None,
    seed: int | None,
    artifact_dir: Path,
    keep_checkpoints: int,
    device: str | None,
    t0: float,
    optimistic: bool = False,
) -> ProposeResult:
    rec = crud.get_campaign(session=session, name=name)
    seen = campaign_fingerprint(session=session, campaign_id=rec.id) if optimistic else None

    def before_writing() -> None:
        if seen is None:
            return
        lock_campaign(session=session, campaign_id=rec.id, kind="propose")
        if campaign_fingerprint(session=session, campaign_id=rec.id) != seen:
            raise _Changed()

    spec = parse_spec(rec.spec, f"campaign '{name}'")
    if rec.status != "active":
        raise BudgetError(f"campaign '{name}' is {rec.status}", "nothing more will be proposed")
    if n is not None and n < 1:
        raise LoopError(f"-n must be at least 1, got {n}", "ask for one or more proposals")
    counts = crud.count_proposals_by_status(session=session, campaign_id=rec.id)
    used, remaining = budget_state(spec, counts)
    if remaining <= 0:
        raise BudgetError(
            f"campaign '{name}' has spent its budget ({used} of {spec.budget} experiments)",
            f"raise it with `loop campaign update {name} --budget N`",
        )
    # proposals before measurements: a job completed between the two reads then shows up as
    # measured (read later) rather than as neither measured nor pending
    props = crud.list_proposals(session=session, campaign_id=rec.id)
    ms = crud.list_measurements(session=session, campaign_id=rec.id)
    best = _target_reached(spec, ms)
    if best is not None:
        assert spec.stop is not None
        raise BudgetError(
            f"campaign '{name}' reached its stop target {spec.stop.target:g} (best {best:g})",
            f"raise the target in a new campaign, or export the results with `loop export {name}`",
        )
    q = min(n or spec.batch_size, remaining)
    notes: list[str] = []
    if q < (n or spec.batch_size):
        notes.append(f"batch cut to {q}: {remaining} experiments left in the budget")
    base_seed = seed if seed is not None else zlib.crc32(name.encode()) % (2**31)
    batch = crud.next_batch(session=session, campaign_id=rec.id)

    pending = [p for p in props if p.status in PENDING]
    failed = [p for p in props if p.status == "failed"]

    n_pool = None
    if spec.is_pool:
        pool_X = _encoded_pool(session, rec.id, name, spec, Path(artifact_dir))
        n_pool = int(pool_X.shape[0])
        space = DesignSpace(spec, pool_X=pool_X)
    else:
        space = DesignSpace(spec)
    available: list[int] | None = None
    if n_pool is not None:
        blocked = {m.candidate_idx for m in ms} | {p.candidate_idx for p in pending + failed}
        available = [i for i in range(n_pool) if i not in blocked]
        if not available:
            raise BudgetError(
                f"every candidate of campaign '{name}' is measured, pending or failed",
                "abandon or re-run pending proposals, or create a campaign with a larger pool",
            )
        if len(available) < q:
            notes.append(f"batch cut to {len(available)}: the pool has no more candidates")
            q = len(available)

    def rows_of(idx: list[int]) -> list[dict[str, Any]]:
        got = crud.get_candidates(session=session, campaign_id=rec.id, idxs=idx)
        return [got[i] for i in idx]

    if len(ms) < max(2, spec.n_initial()):
        items = _initial_design(space, q, base_seed, props, available, rows_of)
        items = _with_images(session, spec, items)
        before_writing()
        out = crud.add_proposals(session=session, campaign_id=rec.id, batch=batch, items=items)
        crud.add_event(
            session=session,
            campaign_id=rec.id,
            kind="proposed",
            payload={"batch": batch, "strategy": "sobol", "ids": [p.id for p in out]},
        )
        return ProposeResult(
            name, batch, "sobol", out, seconds=time.perf_counter() - t0, notes=notes
        )

    # -- model-based batch ---------------------------------------------------------------------
    surrogate = make_campaign_surrogate(spec, hint_name=name)
    if surrogate.needs_structures:
        surrogate.set_structures(graph_store(session, rec.id, name, Path(artifact_dir)))
    if getattr(surrogate, "needs_images", False) and spec.microstructures is not None:
        surrogate.set_images(image_stack(spec.microstructures.path, spec.microstructures.key))
    X, Y, Yvar = _training_data(spec, space, ms)
    bounds = space.bounds()
    version = _data_version(spec, ms)
    cached = crud.find_model_fit(
        session=session, campaign_id=rec.id, kind=surrogate.kind, data_version=version
    )
    state = _load_checkpoint(cached) if cached is not None else None
    warm = None
    if state is None:
        warm = _warm_start(session, rec.id, surrogate, spec)
    try:
        fit: FitResult = surrogate.fit(
            X,
            Y,
            bounds=bounds,
            Yvar=Yvar,
            seed=base_seed,
            state=state,
            warm_start=warm,
            input_names=space.columns,
            device=device,
        )
    except UnknownSurrogateError as err:
        raise LoopError(
            f"campaign '{name}': {err}",
            f"choose another surrogate with `loop campaign update {name} --surrogate gp`",
        ) from None
    before_writing()
    if state is not None and cached is not None:
        fit_rec = cached
        reused = True
    else:
        fit_rec = _store_fit(
            session,
            rec.id,
            name,
            spec,
            surrogate.settings(),
            version,
            fit,
            ms,
            Path(artifact_dir),
            keep_checkpoints,
        )
        reused = False

    # failed experiments steer later batches away from themselves unless the campaign says only
    # to exclude them (`[model] failed = "exclude"`); either way they are not proposed again
    held = pending + (failed if spec.model.failed == "avoid" else [])
    X_pending = space.encode([p.params for p in held]) if held else None
    if n_pool is not None:
        assert available is not None
        picked, values = choose_from_pool(
            spec,
            space,
            fit.model,
            X,
            Y,
            X_pending,
            available,
            q,
            seed=base_seed + batch,
            hint_name=name,
            X_failed=space.encode([p.params for p in failed]) if failed else None,
        )
        rows = rows_of(picked)
        Xq = space.encode(rows)
    else:
        rows, values = choose_in_space(
            spec, space, fit.model, X, Y, X_pending, q, seed=base_seed + batch, hint_name=name
        )
        picked = [None] * len(rows)  # type: ignore[list-item]
        Xq = space.encode(rows)
    with torch.no_grad():
        post = fit.model.posterior(Xq)
        mean, std = post.mean, post.variance.clamp_min(0).sqrt()
    items = []
    for i, row in enumerate(rows):
        preds = {}
        for j, oname in enumerate(spec.outcome_names):
            sign = _signs(spec)[j]
            preds[oname] = {"mean": sign * float(mean[i, j]), "std": float(std[i, j])}
        items.append(
            NewProposal(
                params=row,
                strategy=f"{surrogate.kind}+{acquisition_for(spec)[0]}",
                candidate_idx=picked[i],
                predictions=preds,
                acq_value=float(values[i]),
            )
        )
    items = _with_images(session, spec, items)
    out = crud.add_proposals(
        session=session, campaign_id=rec.id, batch=batch, items=items, model_fit_id=fit_rec.id
    )
    crud.add_event(
        session=session,
        campaign_id=rec.id,
        kind="proposed",
        payload={
            "batch": batch,
            "strategy": items[0].strategy if items else "",
            "ids": [p.id for p in out],
            "model_fit": fit_rec.id,
        },
    )
    return ProposeResult(
        name,
        batch,
        items[0].strategy if items else "",
        out,
        fit_rec,
        reused,
        time.perf_counter() - t0,
        notes,
    )


def _warm_start(
    session: Session, campaign_id: int, surrogate: Surrogate, spec: CampaignSpec
) -> dict[str, Any] | None:
    """Weights to start training from: the campaign's newest fit with the same settings, else the
    pretrained model the spec names (`surrogate_options.pretrained`), else none."""
    for fit in crud.fits_with_checkpoints(session=session, campaign_id=campaign_id):
        if fit.kind == surrogate.kind and fit.settings == surrogate.settings():
            state = _load_checkpoint(fit)
            if state is not None:
                return state
    pretrained = spec.model.surrogate_options.get("pretrained")
    if pretrained:
        from loop.pretrained import load_pretrained_state

        return load_pretrained_state(session=session, name=str(pretrained))
    return None


def _signs(spec: CampaignSpec) -> list[float]:
    """Per output: +1 or -1 to turn stored values into the model's maximization sense."""
    return [o.sign for o in spec.objectives] + [1.0] * len(spec.constraints)


def acquisition_for(spec: CampaignSpec) -> tuple[str, dict[str, Any]]:
    """The acquisition a round uses: the spec's, except that a campaign with several objectives
    whose spec names a single-objective acquisition (the default `qucb` included) gets
    `qlognehvi` with default options."""
    from acquisition.registry import MULTI_OBJECTIVE

    name = spec.model.acquisition
    if len(spec.objectives) > 1 and name not in MULTI_OBJECTIVE:
        return "qlognehvi", {}
    return name, dict(spec.model.acquisition_options)


def make_campaign_surrogate(spec: CampaignSpec, *, hint_name: str = "NAME") -> Surrogate:
    """The surrogate the spec's `[model]` names, or a LoopError saying how to fix the name."""
    load_builtin()
    try:
        return make_surrogate(spec.model.surrogate, spec.model.surrogate_options)
    except UnknownSurrogateError as err:
        raise LoopError(
            str(err), f"fix it with `loop campaign update {hint_name} --surrogate gp`"
        ) from None


def _acquisition(
    spec: CampaignSpec,
    model: Any,
    X: torch.Tensor,
    Y: torch.Tensor,
    X_pending: torch.Tensor | None,
    seed: int,
    hint_name: str,
) -> Any:
    k = len(spec.objectives)
    ctx = AcquisitionContext(
        X_baseline=X,
        Y=Y,
        X_pending=X_pending,
        constraints=[(k + j, c.lower, c.upper) for j, c in enumerate(spec.constraints)],
        seed=seed,
        n_objectives=k,
        ref_point=[None if o.reference is None else o.sign * o.reference for o in spec.objectives],
    )
    name, options = acquisition_for(spec)
    try:
        return build_acquisition(name, model, ctx, options)
    except UnknownAcquisitionError as err:
        raise LoopError(
            str(err), f"fix it with `loop campaign update {hint_name} --acquisition qucb`"
        ) from None


def choose_in_space(
    spec: CampaignSpec,
    space: DesignSpace,
    model: Any,
    X: torch.Tensor,
    Y: torch.Tensor,
    X_pending: torch.Tensor | None,
    q: int,
    *,
    seed: int,
    hint_name: str = "NAME",
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """The model-based step of a continuous or mixed campaign: `q` new parameter rows.

    Gradient ascent from the best of `RAW_SAMPLES` space-filling points, one pick at a time, with
    the composition equalities and the categorical columns held (`optimize_box`). `loop propose`
    and `loop benchmark propose --continuous` both call this.

    Returns:
        The decoded rows (feasible, rounded as the space requires) and their acquisition values.
    """
    acqf = _acquisition(spec, model, X, Y, X_pending, seed, hint_name)
    raw = space.encode(space.sobol(RAW_SAMPLES, seed=seed))
    Xq, values = optimize_box(
        acqf,
        space.bounds(),
        q,
        raw_points=raw,
        equality_constraints=space.equality_constraints(),
        inequality_constraints=space.inequality_constraints(),
        categorical_blocks=space.categorical_blocks(),
    )
    return space.decode(Xq), values


def choose_from_pool(
    spec: CampaignSpec,
    space: DesignSpace,
    model: Any,
    X: torch.Tensor,
    Y: torch.Tensor,
    X_pending: torch.Tensor | None,
    available: list[int],
    q: int,
    *,
    seed: int,
    hint_name: str = "NAME",
    X_failed: torch.Tensor | None = None,
) -> tuple[list[int], torch.Tensor]:
    """The model-based step of a pool campaign: the next `q` candidates by the spec's acquisition.

    `loop propose` and `loop benchmark` both call this, so a benchmark measures the planner users
    run.

    Args:
        spec: The campaign (objectives, constraints, `[model]` acquisition and options).
        space: The design space holding the pool (`space.encoded_pool`).
        model: The fitted surrogate's BoTorch model.
        X, Y: Encoded measured inputs and their outcomes (objective in maximization sense first).
        X_pending: Encoded inputs proposed but not measured (or failed), or `None`.
        available: Pool indices that may be chosen (not measured, pending or failed).
        q: Batch size, at most `len(available)`.
        seed: Seed of the acquisition's Monte Carlo sampler.
        X_failed: Encoded inputs of failed experiments; pool rows equal to them, to a measured or
            to a pending input are never chosen.

    Returns:
        The chosen pool indices and their acquisition values (each given the picks before it).
    """
    acqf = _acquisition(spec, model, X, Y, X_pending, seed, hint_name)
    choices = space.encoded_pool[torch.tensor(available, dtype=torch.long)]
    avoid = torch.cat([x for x in (X, X_pending, X_failed) if x is not None])
    keep = distinct_rows(choices, avoid)
    from botorch.models.ensemble import EnsembleModel

    # small GP pools take BoTorch's greedy, whose per-candidate samples share their base samples
    # (see GP_EXACT_POOL); so do acquisitions the cached path does not cover (hypervolume
    # improvement with 3+ objectives or on a GP)
    small_gp = not isinstance(model, EnsembleModel) and keep.numel() <= GP_EXACT_POOL
    if not small_gp:
        try:
            sel = select_from_pool(
                acqf, model, choices[keep].split(POOL_CHUNK), q, X_pending=X_pending, seed=seed
            )
            return [available[int(keep[i])] for i in sel.indices], sel.values
        except UnsupportedPoolAcquisition:
            pass
    idx, values = optimize_pool(acqf, choices[keep], q)
    return [available[int(keep[int(i)])] for i in idx], values


def _with_images(
    session: Session, spec: CampaignSpec, items: list[NewProposal]
) -> list[NewProposal]:
    """A `[latent]` campaign's proposals with their decoded microstructures attached."""
    if spec.latent is None or not items:
        return items
    from dataclasses import replace

    from loop.gan import load_gan
    from loop.microgen import pack_image
    from surrogates.gan import decode

    lat = spec.latent
    gen = load_gan(session=session, name=lat.gan)
    if gen.config.latent != lat.size:
        raise LoopError(
            f"GAN '{lat.gan}' has a {gen.config.latent} x {gen.config.latent} latent map, the "
            f"campaign a {lat.size} x {lat.size} one",
            f"set [latent] size = {gen.config.latent}, or train a GAN with --latent {lat.size}",
        )
    names = lat.names()
    z = torch.tensor([[float(it.params[n]) for n in names] for it in items], dtype=torch.float32)
    with torch.no_grad():
        images = decode(gen, z, volume_fraction=lat.volume_fraction).numpy()
    return [
        replace(it, params={**it.params, lat.image: pack_image(img)})
        for it, img in zip(items, images, strict=True)
    ]


def _initial_design(
    space: DesignSpace,
    q: int,
    seed: int,
    props: list[ProposalRecord],
    available: list[int] | None,
    rows_of: Any = None,
) -> list[NewProposal]:
    skip = sum(1 for p in props if p.strategy == "sobol")
    points = space.sobol(q, seed=seed, skip=skip)
    if available is None:
        return [NewProposal(params=p, strategy="sobol") for p in points]
    idx = space.nearest_available(points, available)
    rows = rows_of(idx)
    return [
        NewProposal(params=r, strategy="sobol", candidate_idx=i)
        for i, r in zip(idx, rows, strict=True)
    ]


def _encoded_pool(
    session: Session, campaign_id: int, name: str, spec: CampaignSpec, artifact_dir: Path
) -> torch.Tensor:
    """The pool's `N x d` encoding, cached in the artifact directory.

    A stored pool never changes, so the encoding is computed once (reading and decoding every
    candidate row costs seconds per 100k) and kept as a file named by the campaign (and its
    creation time), the pool size and a hash of the parameter definitions; a missing,
    unreadable or mismatched file is rebuilt from the store.
    """
    n = crud.count_candidates(session=session, campaign_id=campaign_id)
    params = json.dumps([p.model_dump(mode="json") for p in spec.parameters], sort_keys=True)
    born = crud.get_campaign(session=session, name=name).created_at.isoformat()
    tag = hashlib.sha256(f"{campaign_id}:{born}:{n}:{params}".encode()).hexdigest()[:16]
    path = artifact_dir / name / "pool" / f"{tag}.pt"
    space = DesignSpace(spec)
    if path.is_file():
        try:
            X = torch.load(path, weights_only=True)
            if isinstance(X, torch.Tensor) and tuple(X.shape) == (n, space.dim):
                return X
        except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt
            pass
    rows = [c[2] for c in crud.list_candidates(session=session, campaign_id=campaign_id)]
    X = space.encode(rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(X, tmp)
        tmp.replace(path)
    except OSError:
        pass  # a read-only artifact directory only costs the next round the same encoding
    return X


#: Graph stores already built in this process, by cache file (a service or worker proposes
#: many rounds; each pool is featurized once).
_GRAPH_STORES: dict[str, Any] = {}


def image_stack(path: str, key: str = "images") -> Any:
    """The voxel images of a `[microstructures]` campaign as a torch tensor (uint8 when binary),
    read once per process and file version."""
    p = Path(path)
    stat = p.stat() if p.is_file() else None
    return _image_stack(str(p), key, stat.st_mtime_ns if stat else 0)


@functools.lru_cache(maxsize=4)
def _image_stack(path: str, key: str, mtime: int) -> Any:
    import numpy as np
    import torch

    from loop.microgen import load_images

    del mtime  # part of the cache key only
    imgs = load_images(path, key)
    if np.isin(imgs, (0.0, 1.0)).all():
        return torch.as_tensor(imgs.astype(np.uint8))
    return torch.as_tensor(imgs, dtype=torch.float32)


def graph_store(session: Session, campaign_id: int, name: str, artifact_dir: Path) -> Any:
    """The crystal graphs of a `[structures]` campaign's pool, in pool order (a `GraphStore`).

    Featurizing means parsing every candidate's CIF (about 3 ms each) and finding its
    neighbours, so the store is built once and kept as a file in the artifact directory, named
    by the campaign, the pool size and the graph settings; a missing or unreadable file is
    rebuilt from the store's CIFs. The name also holds the campaign's creation time, so a pool
    stored again under the same name never reads another pool's graphs.
    """
    from loop.structpool import parse_cif
    from surrogates.crystal_graph import GraphCache, GraphSpec, GraphStore

    n = crud.count_candidates(session=session, campaign_id=campaign_id)
    # a campaign deleted and created again under the same name and id is a new pool
    born = crud.get_campaign(session=session, name=name).created_at.isoformat()
    tag = hashlib.sha256(f"{campaign_id}:{born}:{n}:{GraphSpec()!r}".encode()).hexdigest()[:16]
    path = artifact_dir / name / "pool" / f"graphs-{tag}.pt"
    key = f"{path.resolve()}:{n}"
    if key in _GRAPH_STORES:
        return _GRAPH_STORES[key]
    store = None
    if path.is_file():
        try:
            store = GraphStore.from_state(torch.load(path, weights_only=True))
            if len(store) != n:
                store = None
        except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt
            store = None
    if store is None:
        rows = crud.list_candidates(session=session, campaign_id=campaign_id)
        structures = []
        for idx, _key, params in rows:
            try:
                structures.append(parse_cif(str(params["cif"])))
            except (KeyError, ValueError) as err:
                raise LoopError(
                    f"campaign '{name}': candidate {idx} holds no readable structure ({err})",
                    "recreate the campaign from its structure pool",
                ) from None
        store = GraphStore(GraphCache().graphs(structures))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(store.state(), tmp)
            tmp.replace(path)
        except OSError:
            pass  # a read-only artifact directory only costs the next round the same work
    _GRAPH_STORES[key] = store
    return store


def _store_fit(
    session: Session,
    campaign_id: int,
    name: str,
    spec: CampaignSpec,
    settings: dict[str, Any],
    version: str,
    fit: FitResult,
    ms: list[MeasurementRecord],
    artifact_dir: Path,
    keep_checkpoints: int,
) -> ModelFitRecord:
    names = spec.outcome_names
    signs = _signs(spec)
    k = fit.heldout_mean.shape[0]
    if fit.heldout_index is None:  # every row, the newest `k` when the model kept only those
        used = ms[len(ms) - k :]
    else:
        used = [ms[int(i)] for i in fit.heldout_index]
    heldout = []
    metrics: dict[str, Any] = {"n_train": fit.info.get("n_train", k), "n_heldout": k, **fit.info}
    for j, oname in enumerate(names):
        if k == 0:
            metrics[oname] = {"n": 0}
            continue
        mu = signs[j] * fit.heldout_mean[:, j]
        sd = fit.heldout_std[:, j]
        y = torch.tensor([float(m.values[oname]) for m in used], dtype=torch.double)
        metrics[oname] = _metrics(y, mu, sd)
    for i, m in enumerate(used):
        heldout.append(
            {
                "measurement_id": m.id,
                "mean": {o: signs[j] * float(fit.heldout_mean[i, j]) for j, o in enumerate(names)},
                "std": {o: float(fit.heldout_std[i, j]) for j, o in enumerate(names)},
            }
        )
    stem = f"fit-{version[:12]}-{int(time.time() * 1000)}"
    path, sha = _save_checkpoint(fit.state, artifact_dir / name, stem)
    rec = crud.add_model_fit(
        session=session,
        campaign_id=campaign_id,
        name=f"{name}/{settings['kind']}",
        kind=settings["kind"],
        settings=settings,
        data_version=version,
        metrics=metrics,
        heldout=heldout,
        checkpoint_path=path,
        checkpoint_sha256=sha,
    )
    crud.add_event(
        session=session,
        campaign_id=campaign_id,
        kind="model_fit",
        payload={"model_fit": rec.id, "kind": rec.kind, "n": metrics["n_train"]},
    )
    _prune_checkpoints(session, campaign_id, keep_checkpoints)
    return rec
