"""The report section of crystal-structure campaigns: the convex hull with measured and
proposed phases (`[hull]` campaigns), and the best and the open structures."""

from __future__ import annotations

from typing import Any

import numpy as np

from loop.report.base import ReportContext, Section, SectionOutput, register_section
from loop.report.figures import embed, note, table

__all__ = ["StructureSection"]


def _best(ctx: ReportContext) -> list[list[Any]]:
    o = ctx.spec.objectives[0]
    ms = [m for m in ctx.measurements if o.name in m.values]
    ms.sort(key=lambda m: m.values[o.name], reverse=o.direction == "maximize")
    return [
        [m.params.get("id"), m.params.get("formula"), m.values[o.name], m.source] for m in ms[:15]
    ]


def _open(ctx: ReportContext) -> list[list[Any]]:
    o = ctx.spec.objectives[0]
    rows = []
    for p in ctx.proposals:
        if p.status not in ("proposed", "running"):
            continue
        pred = p.predictions.get(o.name) or {}
        rows.append(
            [p.id, p.params.get("id"), p.params.get("formula"), pred.get("mean"), pred.get("std")]
        )
    return rows


@register_section("structures", "Structures and the convex hull", 52)
class StructureSection(Section):
    """Crystal-structure campaigns: hull figure (with `[hull]`), best and open structures."""

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.spec.structures is not None

    def build(self, ctx: ReportContext) -> SectionOutput:
        o = ctx.spec.objectives[0]
        data: dict[str, Any] = {"best": _best(ctx), "open": _open(ctx)}
        body = ""
        hull = ctx.spec.hull
        if hull is not None:
            hull_data, figure = self._hull(ctx)
            data["hull"] = hull_data
            body += figure
        body += "<h3>Best measured structures</h3>"
        body += (
            table(["id", "formula", o.name, "source"], data["best"])
            if data["best"]
            else note("No measurement yet.")
        )
        if data["open"]:
            body += "<h3>Open proposals</h3>"
            body += table(["proposal", "id", "formula", f"predicted {o.name}", "std"], data["open"])
        return SectionOutput(data, body)

    def _hull(self, ctx: ReportContext) -> tuple[dict[str, Any], str]:
        import matplotlib.pyplot as plt
        from pymatgen.core import Composition

        from loop.hull import HullError, ReferenceHull, hull_table

        hull = ctx.spec.hull
        assert hull is not None
        measured = [
            m for m in ctx.measurements if hull.energy in m.values and m.params.get("formula")
        ]
        if not measured:
            return {"phases": []}, note(
                f"No measured energy ('{hull.energy}') yet: the hull has only its references."
            )
        phases = [(str(m.params["formula"]), float(m.values[hull.energy])) for m in measured]
        try:
            t = hull_table(phases, [tuple(r) for r in hull.references])
        except HullError as err:
            return {"error": str(err)}, note(f"The hull cannot be drawn: {err.message}")
        rows = [
            {
                "measurement": m.id,
                "id": m.params.get("id"),
                "formula": p.formula,
                "energy_per_atom": p.energy_per_atom,
                "formation_energy": p.formation_energy,
                "e_above_hull": p.e_above_hull,
                "stable": p.stable,
            }
            for m, p in zip(measured, t.phases)
        ]
        data = {
            "elements": list(t.elements),
            "phases": rows,
            "stable": [p.formula for p in t.stable],
            "note": "hull of the references and every measured phase",
        }
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
        if len(t.elements) == 2:
            # the classic binary picture: formation energy against composition, hull drawn
            x = [p.fractions[1] for p in t.phases]
            ax.scatter(x, [p.formation_energy for p in t.phases], s=18, label="measured")
            ax.scatter(
                [p.fractions[1] for p in t.references],
                [p.formation_energy for p in t.references],
                s=18,
                marker="s",
                color="grey",
                label="references",
            )
            ax.plot(
                [p.fractions[1] for p in t.stable],
                [p.formation_energy for p in t.stable],
                "-",
                color="crimson",
                label="convex hull",
            )
            ax.set_xlabel(f"fraction of {t.elements[1]}")
            ax.set_ylabel("formation energy (eV/atom)")
        else:
            # many elements: each phase's formation energy against its distance to the hull
            fe = np.array([p.formation_energy for p in t.phases])
            eh = np.array([p.e_above_hull for p in t.phases])
            stable = np.array([p.stable for p in t.phases])
            ax.scatter(fe[~stable], eh[~stable], s=16, label="measured, above the hull")
            ax.scatter(fe[stable], eh[stable], s=28, color="crimson", label="measured, on it")
            for p in t.phases:
                if p.stable:
                    ax.annotate(p.formula, (p.formation_energy, p.e_above_hull), fontsize=7)
            ax.set_xlabel("formation energy (eV/atom)")
            ax.set_ylabel("energy above the hull (eV/atom)")
        opened = [r for r in _open(ctx) if r[3] is not None and r[2]]
        if opened and hull.objective == ctx.spec.objectives[0].name:
            # proposals at their predicted distance above the references' hull
            ref = ReferenceHull([tuple(r) for r in hull.references])
            placed = []
            for pid, _sid, formula, mean, std in opened:
                try:
                    fe = ref.formation_energy(formula, float(mean))
                except HullError:
                    continue
                x = (
                    Composition(formula).get_atomic_fraction(t.elements[1])
                    if len(t.elements) == 2
                    else fe
                )
                y = fe if len(t.elements) == 2 else float(mean)
                placed.append({"proposal": pid, "formula": formula, "x": x, "y": y, "std": std})
            if placed:
                ax.errorbar(
                    [p["x"] for p in placed],
                    [p["y"] for p in placed],
                    yerr=[p["std"] or 0.0 for p in placed],
                    fmt="x",
                    color="darkorange",
                    label="proposed (predicted, vs references)",
                )
            data["proposed"] = placed
        ax.legend(fontsize=8)
        ax.set_title(f"{'-'.join(t.elements)}: {len(t.stable)} phases on the hull", fontsize=9)
        body = embed(fig, "convex hull")
        plt.close(fig)
        stable_rows = [[r["id"], r["formula"], r["formation_energy"]] for r in rows if r["stable"]]
        body += "<h3>Measured phases on the hull</h3>"
        body += (
            table(["id", "formula", "formation energy (eV/atom)"], stable_rows)
            if stable_rows
            else note("None yet: every measured phase lies above the references' hull.")
        )
        return data, body
