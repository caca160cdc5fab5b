"""Figures as self-contained `<img>` tags (PNG, base64) and small HTML helpers."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

__all__ = ["new_figure", "embed", "table", "esc", "fmt", "note"]


def new_figure(width: float = 6.0, height: float = 4.0) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def embed(fig: Any, alt: str) -> str:
    """The figure as an `<img>` with the PNG inline; closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)


def table(header: list[str], rows: list[list[Any]], limit: int = 200) -> str:
    """An HTML table; rows past `limit` are summarized, not dropped silently."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in r) + "</tr>" for r in rows[:limit]
    )
    more = ""
    if len(rows) > limit:
        more = f"<p class='note'>{len(rows) - limit} more rows in the JSON (--json).</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"
