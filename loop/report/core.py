"""Sections every campaign has: summary, progress, model diagnostics and decisions."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from loop.display import shown_params
from loop.report.base import ReportContext, Section, SectionOutput, register_section
from loop.report.figures import embed, esc, fmt, new_figure, note, table

__all__ = ["Summary", "Progress", "Diagnostics", "Decisions", "best_so_far"]


def best_so_far(values: list[float], maximize: bool) -> list[float]:
    out, best = [], -math.inf if maximize else math.inf
    for v in values:
        best = max(best, v) if maximize else min(best, v)
        out.append(best)
    return out


@register_section("summary", "Summary", 10)
class Summary(Section):
    def build(self, ctx: ReportContext) -> SectionOutput:
        st = ctx.status
        spec = ctx.spec
        params = []
        for p in spec.parameters:
            d = p.model_dump(mode="json", exclude_none=True)
            params.append({k: d[k] for k in d if k not in ("description",)})
        data = {
            "campaign": ctx.campaign.name,
            "description": spec.description,
            "space": st["space"],
            "candidates": st["candidates"],
            "parameters": params,
            "objectives": [
                {"name": o.name, "direction": o.direction, "unit": o.unit} for o in spec.objectives
            ],
            "budget": st["budget"],
            "proposals": st["proposals"],
            "measurements": st["measurements"],
            "best": st["best"],
            "stop": st["stop"],
        }
        rows = [
            ["campaign", ctx.campaign.name],
            ["space", f"{st['space']}" + (f" of {st['candidates']}" if st["candidates"] else "")],
            ["objectives", ", ".join(f"{o.name} ({o.direction})" for o in spec.objectives)],
            ["budget", f"{st['budget']['used']} of {st['budget']['total']} used"],
            ["measurements", st["measurements"]],
            ["proposals", ", ".join(f"{k} {v}" for k, v in st["proposals"].items()) or "none"],
        ]
        body = table(["", ""], rows)
        if spec.description:
            body = f"<p>{esc(spec.description)}</p>" + body
        if st["best"]:
            best_rows = [
                [
                    name,
                    b["value"],
                    shown_params(b["params"]),
                    b["measurement"],
                    b["source"],
                    ", ".join(
                        f"{k}: {v}"
                        for k, v in b["provenance"].items()
                        if k in ("operator", "instrument", "file", "raw_sha256")
                    ),
                ]
                for name, b in st["best"].items()
            ]
            body += "<h3>Best so far</h3>" + table(
                ["objective", "value", "parameters", "measurement", "source", "provenance"],
                best_rows,
            )
        else:
            body += note(
                f"No measurements yet. Propose a batch with `loop propose {ctx.campaign.name}` "
                f"and store results with `loop ingest {ctx.campaign.name} FILE`."
            )
        return SectionOutput(data, body)


@register_section("progress", "Progress", 20)
class Progress(Section):
    def build(self, ctx: ReportContext) -> SectionOutput:
        spec = ctx.spec
        ms = ctx.measurements
        batch_of = {p.id: p.batch for p in ctx.proposals}
        curves: dict[str, list[float]] = {}
        for o in spec.objectives:
            vals = [float(m.values[o.name]) for m in ms if o.name in m.values]
            curves[o.name] = best_so_far(vals, o.direction == "maximize")
        batches: dict[int, dict[str, Any]] = {}
        for p in ctx.proposals:
            b = batches.setdefault(
                p.batch,
                {
                    "batch": p.batch,
                    "strategy": p.strategy,
                    "proposed": 0,
                    "measured": 0,
                    "failed": 0,
                    "open": 0,
                    "model_fit": p.model_fit_id,
                    "values": [],
                },
            )
            b["proposed"] += 1
            b["failed"] += int(p.status == "failed")
            b["open"] += int(p.status in ("proposed", "running"))
        first = spec.objectives[0]
        for m in ms:
            hit = batches.get(batch_of.get(m.proposal_id, -1)) if m.proposal_id else None
            if hit is not None and first.name in m.values:
                hit["measured"] += 1
                hit["values"].append(float(m.values[first.name]))
        per_batch = []
        for b in sorted(batches.values(), key=lambda b: b["batch"]):
            vals = b.pop("values")
            pick = max if first.direction == "maximize" else min
            b[f"best_{first.name}"] = pick(vals) if vals else None
            per_batch.append(b)
        data = {
            "best_so_far": curves,
            "batches": per_batch,
            "historical": sum(1 for m in ms if m.proposal_id is None),
        }
        cost, cost_html = _against_cost(ctx, curves)
        data.update(cost)
        if not ms:
            return SectionOutput(data, note("Nothing measured yet: no progress to show."))
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            len(spec.objectives),
            1,
            figsize=(6.5, 3.2 * len(spec.objectives)),
            squeeze=False,
            dpi=100,
        )
        for ax, o in zip(axes[:, 0], spec.objectives):
            pts = [
                (i + 1, float(m.values[o.name]), batch_of.get(m.proposal_id or -1, 0))
                for i, m in enumerate(ms)
                if o.name in m.values
            ]
            x = np.array([p[0] for p in pts])
            y = np.array([p[1] for p in pts])
            c = np.array([p[2] for p in pts])
            sc = ax.scatter(x, y, c=c, s=14, cmap="viridis", label="measured")
            ax.step(x, curves[o.name], where="post", color="crimson", label="best so far")
            ax.set_xlabel("experiment")
            ax.set_ylabel(f"{o.name}" + (f" ({o.unit})" if o.unit else ""))
            ax.legend(loc="best", fontsize=8)
            fig.colorbar(sc, ax=ax, label="batch (0: historical)")
        body = embed(fig, "best so far against experiments")
        body += table(
            [
                "batch",
                "strategy",
                "proposed",
                "measured",
                "failed",
                "open",
                "model fit",
                f"best {first.name}",
            ],
            [
                [
                    b["batch"],
                    b["strategy"],
                    b["proposed"],
                    b["measured"],
                    b["failed"],
                    b["open"],
                    b["model_fit"],
                    b[f"best_{first.name}"],
                ]
                for b in per_batch
            ],
        )
        return SectionOutput(data, body + cost_html)


def _against_cost(ctx: ReportContext, curves: dict[str, list[float]]) -> tuple[dict[str, Any], str]:
    """Progress against cumulative cost, when the spec declares a cost for every source present.

    Returns:
        The JSON keys `sources` (results per source), `costs` (as declared, or None) and `cost`
        (None, or the total, the cost per source and, per objective, the cumulative cost at
        each point of its best-so-far curve), and the HTML: a figure when there are several
        sources, else a note saying why progress is shown against experiments only.
    """
    spec, ms = ctx.spec, ctx.measurements
    sources: dict[str, int] = {}
    for m in ms:
        sources[m.source] = sources.get(m.source, 0) + 1
    costs = spec.costs
    data: dict[str, Any] = {"sources": sources, "costs": costs, "cost": None}
    missing = [s for s in sources if costs is None or s not in costs]
    listed = ", ".join(f"'{s}' ({n} results)" for s, n in sources.items())
    example = ", ".join(f"{s} = {1.0 if i == 0 else 0.1}" for i, s in enumerate(missing[:3]))
    if not sources:
        return data, ""
    if costs is not None and not missing:
        cum = np.cumsum([costs[m.source] for m in ms])
        data["cost"] = {
            "total": float(cum[-1]),
            "by_source": {
                s: {"results": n, "cost_each": costs[s], "cost": n * costs[s]}
                for s, n in sources.items()
            },
            "cumulative": {
                o.name: [float(c) for c, m in zip(cum, ms) if o.name in m.values]
                for o in spec.objectives
            },
        }
    if len(sources) == 1:
        (only,) = sources
        each = f" at a declared cost of {fmt(costs[only])} each" if costs and not missing else ""
        return data, note(
            f"All {sources[only]} results come from one source, '{only}'{each}: one fidelity, "
            "so progress is shown against the number of experiments."
        )
    if missing:
        declared = (
            f"the spec's [costs] declares {', '.join(sorted(costs))} but not "
            f"{', '.join(repr(s) for s in missing)}"
            if costs
            else "the spec declares no cost per source"
        )
        return data, note(
            f"Results come from {len(sources)} sources ({listed}), but {declared}, so progress "
            "is shown against the number of experiments only, every result counted alike. To "
            "see it against cost, give each source its cost per measurement in a [costs] table "
            f"of the campaign spec (e.g. [costs] with {example})."
        )
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(spec.objectives),
        1,
        figsize=(6.5, 3.2 * len(spec.objectives)),
        squeeze=False,
        dpi=100,
    )
    marks = "osD^v<>ph*"
    for ax, o in zip(axes[:, 0], spec.objectives):
        xs = data["cost"]["cumulative"][o.name]
        had = [m for m in ms if o.name in m.values]
        for i, s in enumerate(sources):
            pts = [(x, float(m.values[o.name])) for x, m in zip(xs, had) if m.source == s]
            if pts:
                ax.scatter(*zip(*pts), s=14, marker=marks[i % len(marks)], label=s, alpha=0.7)
        ax.step(xs, curves[o.name], where="post", color="crimson", label="best so far")
        ax.set_xlabel("cumulative cost")
        ax.set_ylabel(f"{o.name}" + (f" ({o.unit})" if o.unit else ""))
        ax.legend(loc="best", fontsize=8)
    html = embed(fig, "best so far against cumulative cost")
    html += table(
        ["source", "results", "cost each", "cost"],
        [
            [s, v["results"], v["cost_each"], v["cost"]]
            for s, v in data["cost"]["by_source"].items()
        ],
    )
    html += note(
        f"Results come from {len(sources)} sources; cumulative cost uses the spec's cost per "
        f"result of each source (total {fmt(data['cost']['total'])})."
    )
    return data, html


def _heldout_arrays(ctx: ReportContext, fit: Any, oname: str) -> tuple[np.ndarray, ...]:
    by_id = ctx.by_id
    y, mu, sd = [], [], []
    for h in fit.heldout:
        m = by_id.get(h.get("measurement_id"))
        if m is None or oname not in m.values or oname not in h.get("mean", {}):
            continue
        y.append(float(m.values[oname]))
        mu.append(float(h["mean"][oname]))
        sd.append(float(h["std"][oname]))
    return np.array(y), np.array(mu), np.array(sd)


@register_section("diagnostics", "Model diagnostics", 30)
class Diagnostics(Section):
    def build(self, ctx: ReportContext) -> SectionOutput:
        from loop.benchmark.uq_metrics import (
            calibration_curve,
            interval_coverage,
            miscalibration_area,
        )

        outcomes = ctx.spec.outcome_names
        fits = [f for f in ctx.fits if f.heldout]
        per_fit = []
        for f in fits:
            row: dict[str, Any] = {
                "fit": f.id,
                "kind": f.kind,
                "created_at": f.created_at,
                "n_train": f.metrics.get("n_train"),
                "outcomes": {},
            }
            for o in outcomes:
                y, mu, sd = _heldout_arrays(ctx, f, o)
                if len(y) < 2:
                    continue
                row["outcomes"][o] = {
                    "n": int(len(y)),
                    "rmse": float(np.sqrt(np.mean((y - mu) ** 2))),
                    "coverage90": interval_coverage(y, mu, sd, 0.9),
                    "miscalibration_area": miscalibration_area(y, mu, sd),
                }
            per_fit.append(row)
        data = {"fits": per_fit}
        if not fits:
            return SectionOutput(
                data, note("No model fit yet: the first model-based batch fits one.")
            )
        last = fits[-1]
        body = f"<p>Held-out predictions of fit {last.id} ({esc(last.kind)}).</p>"
        import matplotlib.pyplot as plt

        for o in outcomes:
            y, mu, sd = _heldout_arrays(ctx, last, o)
            if len(y) < 2:
                continue
            fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
            a1.errorbar(y, mu, yerr=1.645 * sd, fmt="o", ms=3, alpha=0.6, elinewidth=0.8)
            lo, hi = float(min(y.min(), mu.min())), float(max(y.max(), mu.max()))
            a1.plot([lo, hi], [lo, hi], "k--", lw=1)
            a1.set_xlabel(f"measured {o}")
            a1.set_ylabel(f"predicted {o} (90% interval)")
            a1.set_title("parity")
            p, obs = calibration_curve(y, mu, sd)
            a2.plot(p, obs, label=f"area {miscalibration_area(y, mu, sd):.3f}")
            a2.plot([0, 1], [0, 1], "k--", lw=1)
            a2.set_xlabel("expected proportion in interval")
            a2.set_ylabel("observed proportion")
            a2.set_title("calibration")
            a2.legend(loc="upper left")
            body += embed(fig, f"parity and calibration of {o}")
        if len(per_fit) > 1:
            fig, ax = new_figure(6.5, 3.5)
            for o in outcomes:
                xs = [r["n_train"] for r in per_fit if o in r["outcomes"]]
                cov = [r["outcomes"][o]["coverage90"] for r in per_fit if o in r["outcomes"]]
                area = [
                    r["outcomes"][o]["miscalibration_area"] for r in per_fit if o in r["outcomes"]
                ]
                ax.plot(xs, cov, "o-", label=f"{o}: 90% coverage")
                ax.plot(xs, area, "s--", label=f"{o}: miscalibration area")
            ax.axhline(0.9, color="grey", lw=0.8)
            ax.set_xlabel("training points of the fit")
            ax.legend(fontsize=8)
            body += embed(fig, "calibration over the campaign")
        rows = []
        for r in per_fit:
            for o, v in r["outcomes"].items():
                rows.append(
                    [
                        r["fit"],
                        r["kind"],
                        r["n_train"],
                        o,
                        v["n"],
                        v["rmse"],
                        v["coverage90"],
                        v["miscalibration_area"],
                    ]
                )
        body += table(
            [
                "fit",
                "kind",
                "n train",
                "outcome",
                "held out",
                "rmse",
                "90% coverage",
                "miscal. area",
            ],
            rows,
        )
        return SectionOutput(data, body)


@register_section("decisions", "Decisions", 40)
class Decisions(Section):
    def build(self, ctx: ReportContext) -> SectionOutput:
        outcomes = ctx.spec.outcome_names
        measured: dict[int, Any] = {}
        for ms_ in ctx.measurements:
            if ms_.proposal_id is not None and ms_.proposal_id not in measured:
                measured[ms_.proposal_id] = ms_
        rows = []
        for p in ctx.proposals:
            m = measured.get(p.id)
            row: dict[str, Any] = {
                "proposal": p.id,
                "batch": p.batch,
                "status": p.status,
                "strategy": p.strategy,
                "model_fit": p.model_fit_id,
                "acq_value": p.acq_value,
                "params": p.params,
                "predicted": p.predictions,
                "measured": None if m is None else {o: m.values.get(o) for o in outcomes},
            }
            z = {}
            for o in outcomes:
                pr = p.predictions.get(o)
                if m is not None and pr and o in m.values and pr.get("std"):
                    z[o] = (float(m.values[o]) - pr["mean"]) / max(pr["std"], 1e-12)
            row["z"] = z
            rows.append(row)
        data: dict[str, Any] = {"proposals": rows}
        model_rows = [r for r in rows if r["model_fit"] is not None]
        if not rows:
            return SectionOutput(data, note("No proposals yet."))
        body = ""
        if model_rows:
            import matplotlib.pyplot as plt

            o = outcomes[0]
            pts = [
                r
                for r in model_rows
                if r["measured"] and r["measured"].get(o) is not None and o in r["predicted"]
            ]
            if pts:
                fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
                x = np.array([r["predicted"][o]["mean"] for r in pts])
                e = np.array([r["predicted"][o]["std"] for r in pts])
                y = np.array([r["measured"][o] for r in pts])
                b = np.array([r["batch"] for r in pts])
                ax.errorbar(x, y, xerr=1.645 * e, fmt="none", ecolor="lightgrey", zorder=1)
                sc = ax.scatter(x, y, c=b, cmap="viridis", s=18, zorder=2)
                lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
                ax.plot([lo, hi], [lo, hi], "k--", lw=1)
                ax.set_xlabel(f"predicted {o} when chosen (90% interval)")
                ax.set_ylabel(f"measured {o}")
                fig.colorbar(sc, ax=ax, label="batch")
                body += embed(fig, "predicted when chosen against measured")
            zs = [abs(r["z"][o]) for r in model_rows if o in r["z"]]
            if zs:
                inside = float(np.mean(np.array(zs) <= 1.645))
                data["chosen_inside_90"] = inside
                body += note(
                    f"{inside:.0%} of the {len(zs)} measured model-chosen points fell inside the "
                    "90% interval predicted when they were chosen."
                )
        else:
            body += note("Every batch so far is the initial design; no model chose anything.")
        by_batch: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_batch[r["batch"]].append(r)
        trows = []
        for batch_no in sorted(by_batch, reverse=True):
            for r in by_batch[batch_no]:
                pred = "; ".join(
                    f"{k} {fmt(v['mean'])} ± {fmt(v['std'])}" for k, v in r["predicted"].items()
                )
                trows.append(
                    [
                        r["batch"],
                        r["proposal"],
                        r["strategy"],
                        r["model_fit"],
                        r["acq_value"],
                        pred or "-",
                        r["measured"] or "-",
                        r["status"],
                    ]
                )
        body += table(
            [
                "batch",
                "proposal",
                "strategy",
                "model fit",
                "acq. value",
                "predicted (mean ± sd)",
                "measured",
                "status",
            ],
            trows,
        )
        return SectionOutput(data, body)
