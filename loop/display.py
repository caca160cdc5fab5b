"""What a table shows of a design's parameters: values too long for a cell are left out.

A crystal structure's CIF and a packed microstructure image (`HxW:base64`, written by
`loop.microgen.pack_image`) run to hundreds of characters; the CLI's tables and the report's
leave them out, and `--json` carries them whole.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["HIDDEN_IN_TABLES", "is_packed_image", "shown_params"]

#: Parameter names whose values no table shows (a structure's CIF).
HIDDEN_IN_TABLES = frozenset({"cif"})

_PACKED_IMAGE = re.compile(r"\d+(x\d+)+:[A-Za-z0-9+/=]{16,}")


def is_packed_image(value: Any) -> bool:
    """Whether `value` is a microstructure image packed as text (`HxW:base64`)."""
    return isinstance(value, str) and _PACKED_IMAGE.match(value) is not None


def shown_params(params: dict[str, Any]) -> dict[str, Any]:
    """`params` without the values a table cell should not hold (CIFs, packed images)."""
    return {k: v for k, v in params.items() if k not in HIDDEN_IN_TABLES and not is_packed_image(v)}
