"""The report section of microstructure campaigns: images of the best measured and of the
proposed designs (the middle x-z slice of 3-D images), with their values."""

from __future__ import annotations

from typing import Any

import numpy as np

from loop.report.base import ReportContext, Section, SectionOutput, register_section
from loop.report.figures import embed, note

__all__ = ["MicrostructureSection", "design_image"]


def _simulator_options(ctx: ReportContext) -> dict[str, Any] | None:
    sim = ctx.spec.simulator
    return dict(sim.options) if sim is not None and sim.name == "homogenization" else None


def design_image(ctx: ReportContext, params: dict[str, Any]) -> np.ndarray | None:
    """The image of one design: from the campaign's stack, or generated from generator
    parameters with seed 0 (one realization of the random field), or None."""
    if ctx.spec.latent is not None:
        from loop.microgen import unpack_image

        packed = params.get(ctx.spec.latent.image)
        return unpack_image(packed).astype(float) if isinstance(packed, str) else None
    ms = ctx.spec.microstructures
    if ms is not None:
        from loop.engine import image_stack

        stack = image_stack(ms.path, ms.key)
        idx = int(params[ms.name])
        return stack[idx].numpy().astype(float) if 0 <= idx < len(stack) else None
    opts = _simulator_options(ctx)
    if opts is None:
        return None
    from loop.simulators.homogenization import HomogenizationSimulator

    sim = HomogenizationSimulator.from_options({**opts, "outputs": {}}, spec=None)
    names = {p.name for p in ctx.spec.parameters}
    mapping = dict(opts.get("parameters") or {})
    for field in ("volume_fraction", "length", "length_x", "length_y", "length_z", "angle"):
        if field not in mapping and field in names:
            mapping[field] = field
    sim.parameters = mapping
    try:
        return sim.image(params, 0).astype(float)
    except Exception:  # noqa: BLE001 - a design the generator refuses is shown as missing
        return None


def _slice(img: np.ndarray) -> np.ndarray:
    return img[:, img.shape[1] // 2, :] if img.ndim == 3 else img


@register_section("microstructures", "Microstructures", 53)
class MicrostructureSection(Section):
    """Images of the best measured designs and of the open proposals."""

    def applies(self, ctx: ReportContext) -> bool:
        return (
            ctx.spec.microstructures is not None
            or ctx.spec.latent is not None
            or _simulator_options(ctx) is not None
        )

    def build(self, ctx: ReportContext) -> SectionOutput:
        import matplotlib.pyplot as plt

        o = ctx.spec.objectives[0]
        ms = [m for m in ctx.measurements if o.name in m.values]
        ms.sort(key=lambda m: m.values[o.name], reverse=o.direction == "maximize")
        best = [(f"best #{i + 1}: {m.values[o.name]:.4g}", m.params) for i, m in enumerate(ms[:4])]
        open_ = [
            (f"proposal {p.id} (open)", p.params)
            for p in ctx.proposals
            if p.status in ("proposed", "running")
        ][:4]
        panels = [(t, p, design_image(ctx, p)) for t, p in best + open_]
        panels = [x for x in panels if x[2] is not None]
        data = {
            "best": [{"title": t, "params": p} for t, p in best],
            "open": [{"title": t, "params": p} for t, p in open_],
            "source": (
                "stack"
                if ctx.spec.microstructures is not None
                else "decoded by the GAN"
                if ctx.spec.latent is not None
                else "generator, seed 0"
            ),
        }
        if not panels:
            return SectionOutput(data, note("No measured or proposed microstructure yet."))
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.1), squeeze=False)
        for ax, (title, params, img) in zip(axes[0], panels, strict=True):
            ax.imshow(_slice(img), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            skip = {ctx.spec.latent.image} if ctx.spec.latent is not None else set()
            shown = [(k, v) for k, v in params.items() if k not in skip][:4]
            label = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown
            )
            ax.set_title(f"{title}\n{label}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        if ctx.spec.microstructures is not None:
            origin = "Images from the campaign's stack."
        elif ctx.spec.latent is not None:
            origin = (
                f"Each image is the one the GAN '{ctx.spec.latent.gan}' decoded from the "
                "design's latent values when it was proposed (stored with the proposal), the "
                "image that was simulated or measured."
            )
        else:
            origin = (
                "Generated from each design's parameters with random seed 0: one realization "
                "of the random field, not necessarily the one simulated."
            )
        caption = "Phase 1 dark; the middle slice of 3-D images. " + origin
        alt = "images of the best measured and the proposed microstructures"
        return SectionOutput(data, embed(fig, alt) + note(caption))
