"""The terminal view of `loop status`: one rich renderable, printed once or refreshed live."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from loop.cli.common import fmt, params_text

__all__ = ["status_view"]


def status_view(st: dict[str, Any], now: datetime | None = None) -> Any:
    """Header, counts by status, best so far, stop rule, last fit and running jobs."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = now or datetime.now(timezone.utc)
    b = st["budget"]
    parts: list[Any] = [
        Text.from_markup(
            f"[bold]{st['campaign']}[/bold] ({st['status']}, spec v{st['spec_version']}, "
            f"{st['space']}{'' if st['candidates'] is None else ' of ' + str(st['candidates'])})"
            f": budget {b['used']}/{b['total']} used, {st['measurements']} measurements"
        )
    ]
    t = Table(title="proposals")
    for s in st["proposals"]:
        t.add_column(s, justify="right")
    t.add_row(*[str(v) for v in st["proposals"].values()])
    parts.append(t)
    if st["best"]:
        bt = Table(title="best so far")
        for c in ("objective", "value", "parameters", "measurement", "source"):
            bt.add_column(c)
        for oname, best in st["best"].items():
            bt.add_row(
                f"{oname} ({best['direction']})",
                fmt(best["value"]),
                params_text(best["params"]),
                str(best["measurement"]),
                str(best["source"]),
            )
        parts.append(bt)
    else:
        parts.append(Text("no measurements yet"))
    if st["stop"] is not None:
        s = st["stop"]
        parts.append(
            Text(
                f"stop target {s['objective']} {fmt(s['target'])}: "
                f"{'reached' if s['reached'] else 'not reached'}"
            )
        )
    fit = st["last_fit"]
    if fit is None:
        parts.append(Text("no model fit yet"))
    else:
        ft = Table(title=f"last fit {fit['id']} ({fit['kind']}, {fit['created_at'][:19]})")
        for c in ("outcome", "rmse", "r2", "90% coverage", "nll", "held out"):
            ft.add_column(c, justify="right")
        for k, v in fit["metrics"].items():
            if isinstance(v, dict) and "rmse" in v:
                ft.add_row(
                    k,
                    fmt(v["rmse"]),
                    fmt(v["r2"]),
                    fmt(v["coverage90"]),
                    fmt(v.get("nll")),
                    str(v.get("n", "-")),
                )
        parts.append(ft)
    running = [p for p in st.get("pending", []) if p["status"] == "running"]
    if running:
        rt = Table(title="running jobs")
        for c in ("proposal", "worker", "lease", "attempts", "parameters"):
            rt.add_column(c)
        for p in running:
            exp = p.get("lease_expires_at")
            if exp:
                left = (datetime.fromisoformat(exp) - now).total_seconds()
                lease = f"{left:.0f} s left" if left >= 0 else f"expired {-left:.0f} s ago"
            else:
                lease = "-"
            rt.add_row(
                str(p["id"]),
                str(p["lease_owner"] or "-"),
                lease,
                str(p.get("attempts", 0)),
                params_text(p["params"]),
            )
        parts.append(rt)
    waiting = sum(1 for p in st.get("pending", []) if p["status"] == "proposed")
    if waiting:
        parts.append(Text(f"{waiting} proposal(s) waiting to be run"))
    return Group(*parts)
