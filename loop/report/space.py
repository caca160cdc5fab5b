"""Views of the design space: composition maps, pairwise parameter maps, the Pareto front and a
2-D projection of the surrogate's learned representation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loop.display import shown_params
from loop.report.base import ReportContext, Section, SectionOutput, register_section
from loop.report.figures import embed, esc, note, table
from loop.spec import CompositionParameter

__all__ = ["SpaceMap", "ParetoFront", "Representation"]

#: Most parameters shown in a pairwise map.
MAX_AXES = 4


def _numeric(rows: list[dict[str, Any]], cols: list[str]) -> np.ndarray:
    out = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            v = r.get(c)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[i, j] = float(v)
    return out


def _composition_elements(ctx: ReportContext) -> list[str]:
    els: list[str] = []
    for p in ctx.spec.parameters:
        if isinstance(p, CompositionParameter):
            els += list(p.elements)
    return els


def _varying(A: np.ndarray, B: np.ndarray, cols: list[str], k: int) -> list[int]:
    both = np.vstack([A, B]) if len(B) else A
    spread = []
    for j in range(len(cols)):
        col = both[:, j]
        col = col[np.isfinite(col)]
        lo, hi = (col.min(), col.max()) if len(col) else (0.0, 0.0)
        spread.append((hi - lo) / (abs(hi) + abs(lo) + 1e-12) if hi > lo else 0.0)
    order = [j for j in np.argsort(spread)[::-1] if spread[j] > 0]
    return [int(j) for j in order[:k]]


@register_section("space", "Design space", 50)
class SpaceMap(Section):
    """Ternary map for three-element compositions; pairwise maps otherwise."""

    def applies(self, ctx: ReportContext) -> bool:
        # a structure's only column is its index in the pool: the structure section and the
        # learned representation show those campaigns instead
        return ctx.spec.structures is None and ctx.spec.microstructures is None

    def build(self, ctx: ReportContext) -> SectionOutput:
        import matplotlib.pyplot as plt

        from loop.space import input_columns

        o = ctx.spec.objectives[0]
        ms = [m for m in ctx.measurements if o.name in m.values]
        elements = _composition_elements(ctx)
        cols = input_columns(ctx.spec)
        M = _numeric([m.params for m in ms], cols)
        C = _numeric([p for _, p in ctx.candidate_sample], cols)
        y = np.array([float(m.values[o.name]) for m in ms])
        data: dict[str, Any] = {
            "kind": "composition" if elements else "parameters",
            "measured": len(ms),
            "candidates_shown": len(ctx.candidate_sample),
            "candidates": ctx.n_candidates,
        }
        ternary = len(elements) == 3
        if ternary:
            axes = [cols.index(e) for e in elements]
        else:
            axes = _varying(M, C, cols, MAX_AXES)
        data["axes"] = [cols[j] for j in axes]
        if len(axes) == 0 or (not ms and not len(C)):
            return SectionOutput(data, note("Nothing to map yet: no measured or candidate points."))
        if ternary:
            data["view"] = "ternary"
            fig, ax = plt.subplots(figsize=(6.2, 5.4), dpi=100)

            def tern(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                a, b, c = (np.nan_to_num(A[:, j]) for j in axes)
                s = a + b + c
                s[s == 0] = 1.0
                b, c = b / s, c / s
                return b + c / 2.0, c * math.sqrt(3) / 2.0

            ax.plot([0, 1, 0.5, 0], [0, 0, math.sqrt(3) / 2, 0], "k-", lw=1)
            for (x, yy), lab in zip(
                [(0, 0), (1, 0), (0.5, math.sqrt(3) / 2)], [cols[j] for j in axes]
            ):
                ax.annotate(
                    lab,
                    (x, yy),
                    ha="center",
                    va="bottom" if yy else "top",
                    fontsize=11,
                    xytext=(0, 6 if yy else -6),
                    textcoords="offset points",
                )
            if len(C):
                cx, cy = tern(C)
                ax.scatter(cx, cy, s=6, c="lightgrey", label="candidates")
            if ms:
                mx, my = tern(M)
                sc: Any = ax.scatter(
                    mx,
                    my,
                    c=y,
                    s=30,
                    cmap="viridis",
                    edgecolors="k",
                    linewidths=0.4,
                    label="measured",
                )
                fig.colorbar(sc, ax=ax, label=o.name)
            ax.set_aspect("equal")
            ax.axis("off")
            ax.legend(loc="upper right", fontsize=8)
            text = (
                f"Composition map of {', '.join(data['axes'])}: measured points coloured by "
                f"{o.name}" + (", candidates in grey." if len(C) else ".")
            )
            return SectionOutput(data, f"<p>{esc(text)}</p>" + embed(fig, "ternary map"))
        data["view"] = "pairwise"
        k = len(axes)
        if k == 1:
            fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
            j = axes[0]
            if len(C):
                ax.scatter(C[:, j], np.zeros(len(C)), s=6, c="lightgrey", label="candidates")
            if ms:
                ax.scatter(M[:, j], y, c=y, cmap="viridis", s=20, label="measured")
            ax.set_xlabel(cols[j])
            ax.set_ylabel(o.name)
            return SectionOutput(data, embed(fig, "parameter map"))
        fig, grid = plt.subplots(
            k - 1,
            k - 1,
            figsize=(max(5.5, 2.6 * (k - 1) + 1.5), max(4.0, 2.4 * (k - 1))),
            squeeze=False,
            dpi=100,
            layout="constrained",
        )
        sc = None
        for r in range(1, k):
            for c in range(k - 1):
                ax = grid[r - 1, c]
                if c >= r:
                    ax.axis("off")
                    continue
                jx, jy = axes[c], axes[r]
                if len(C):
                    ax.scatter(C[:, jx], C[:, jy], s=4, c="lightgrey")
                if ms:
                    sc = ax.scatter(
                        M[:, jx],
                        M[:, jy],
                        c=y,
                        cmap="viridis",
                        s=14,
                        edgecolors="k",
                        linewidths=0.3,
                    )
                if r == k - 1:
                    ax.set_xlabel(cols[jx])
                if c == 0:
                    ax.set_ylabel(cols[jy])
        if sc is not None:
            fig.colorbar(sc, ax=grid.ravel().tolist(), label=o.name)
        text = (
            f"Measured points (coloured by {o.name}) over the candidates (grey) on the "
            f"{k} parameters that vary most: {', '.join(data['axes'])}."
        )
        return SectionOutput(data, f"<p>{esc(text)}</p>" + embed(fig, "pairwise parameter map"))


@register_section("pareto", "Pareto front", 55)
class ParetoFront(Section):
    def applies(self, ctx: ReportContext) -> bool:
        return len(ctx.spec.objectives) > 1

    def build(self, ctx: ReportContext) -> SectionOutput:
        import matplotlib.pyplot as plt

        from loop.status import pareto_front

        objs = ctx.spec.objectives
        front = pareto_front(ctx.spec, ctx.measurements)
        data = {"front": front, "objectives": [o.name for o in objs]}
        a, b = objs[0], objs[1]
        pts = [m for m in ctx.measurements if a.name in m.values and b.name in m.values]
        if not pts:
            return SectionOutput(data, note("No measurement of both objectives yet."))
        fig, ax = plt.subplots(figsize=(6.2, 4.5), dpi=100)
        ax.scatter(
            [m.values[a.name] for m in pts],
            [m.values[b.name] for m in pts],
            s=14,
            c="lightsteelblue",
            label="measured",
        )
        fx = [f["values"][a.name] for f in front]
        fy = [f["values"][b.name] for f in front]
        order = np.argsort(fx)
        ax.plot(
            np.array(fx)[order],
            np.array(fy)[order],
            "o-",
            color="crimson",
            label="Pareto front (feasible)",
        )
        ax.set_xlabel(f"{a.name} ({a.direction})")
        ax.set_ylabel(f"{b.name} ({b.direction})")
        ax.legend(fontsize=8)
        body = embed(fig, "Pareto front")
        body += table(
            ["measurement", "proposal", *[o.name for o in objs], "parameters"],
            [
                [
                    f["measurement"],
                    f["proposal"],
                    *[f["values"][o.name] for o in objs],
                    shown_params(f["params"]),
                ]
                for f in front
            ],
        )
        return SectionOutput(data, body)


@register_section("representation", "What the model learned", 60)
class Representation(Section):
    """PCA of the latest fit's learned representation of measured and candidate points."""

    def applies(self, ctx: ReportContext) -> bool:
        return any(f.checkpoint_path for f in ctx.fits)

    def build(self, ctx: ReportContext) -> SectionOutput:
        import matplotlib.pyplot as plt

        try:
            Z, labels, fit_id, kind = _features(ctx)
        except Exception as err:  # a missing or unreadable checkpoint is reported, not fatal
            return SectionOutput(
                {"error": f"{type(err).__name__}: {err}"},
                note(f"The latest model could not be loaded ({type(err).__name__}: {err})."),
            )
        Zc = Z - Z.mean(axis=0, keepdims=True)
        _u, s, vt = np.linalg.svd(Zc, full_matrices=False)
        P = Zc @ vt[:2].T if vt.shape[0] >= 2 else np.hstack([Zc @ vt[:1].T, np.zeros((len(Z), 1))])
        var = (s**2) / max(float((s**2).sum()), 1e-300)
        explained = [float(v) for v in var[:2]]
        data = {
            "fit": fit_id,
            "kind": kind,
            "method": "pca",
            "explained_variance": explained,
            "points": int(len(Z)),
            "features": int(Z.shape[1]),
        }
        o = ctx.spec.objectives[0]
        is_m = np.array([lab is not None for lab in labels])
        fig, ax = plt.subplots(figsize=(6.2, 4.6), dpi=100)
        if (~is_m).any():
            ax.scatter(P[~is_m, 0], P[~is_m, 1], s=5, c="lightgrey", label="candidates")
        if is_m.any():
            yv = np.array([lab for lab in labels if lab is not None], dtype=float)
            sc = ax.scatter(
                P[is_m, 0],
                P[is_m, 1],
                c=yv,
                cmap="viridis",
                s=18,
                edgecolors="k",
                linewidths=0.3,
                label="measured",
            )
            fig.colorbar(sc, ax=ax, label=o.name)
        ax.set_xlabel(f"PC 1 ({explained[0]:.0%})")
        if len(explained) > 1:
            ax.set_ylabel(f"PC 2 ({explained[1]:.0%})")
        ax.legend(fontsize=8)
        text = (
            f"Principal components of how fit {fit_id} ({kind}) represents the points: "
            "hidden-layer activations for neural surrogates, lengthscale-scaled inputs for "
            "GPs. Nearby points are ones the model treats alike."
        )
        return SectionOutput(data, f"<p>{esc(text)}</p>" + embed(fig, "learned representation"))


def _features(ctx: ReportContext) -> tuple[np.ndarray, list[float | None], int, str]:
    """Rebuild the latest checkpointed fit (no training) and embed measured and candidates."""
    from loop.engine import _load_checkpoint, _training_data, make_campaign_surrogate
    from loop.space import DesignSpace
    from surrogates.representation import learned_features

    fit = next(f for f in reversed(ctx.fits) if f.checkpoint_path)
    state = _load_checkpoint(fit)
    if state is None:
        raise FileNotFoundError(f"checkpoint of fit {fit.id} is missing or damaged")
    spec = ctx.spec
    space = DesignSpace(spec)
    X, Y, Yvar = _training_data(spec, space, ctx.measurements)
    surrogate = make_campaign_surrogate(spec)
    if surrogate.needs_structures:
        surrogate.set_structures(ctx.graphs)
    model = surrogate.fit(
        X,
        Y,
        bounds=space.bounds(),
        Yvar=Yvar,
        state=state,
        input_names=space.columns,
        device="cpu",
    ).model
    o = spec.objectives[0]
    ms = [m for m in ctx.measurements if o.name in m.values]
    rows = [m.params for m in ms] + [p for _, p in ctx.candidate_sample]
    labels: list[float | None] = [float(m.values[o.name]) for m in ms]
    labels += [None] * len(ctx.candidate_sample)
    Z = learned_features(model, space.encode(rows)).double().numpy()
    return Z, labels, fit.id, fit.kind
