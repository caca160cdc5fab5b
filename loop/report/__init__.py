"""`loop report`: a self-contained HTML report of a campaign, and the same numbers as JSON.

Sections register with `register_section`; importing this package registers the ones every
campaign kind that exists has (summary, progress, diagnostics, decisions, space views, Pareto
front, learned representation).
"""

from __future__ import annotations

from loop.report import core, microstructures, space, structures  # noqa: F401
from loop.report.base import SECTIONS, ReportContext, Section, SectionOutput, register_section
from loop.report.build import build_report, load_context

__all__ = [
    "SECTIONS",
    "ReportContext",
    "Section",
    "SectionOutput",
    "register_section",
    "build_report",
    "load_context",
]
