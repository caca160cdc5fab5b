"""The `folder` bridge, for instruments that can only read and write files.

Layout under the watched folder:

- `proposals/<campaign>-<id>.json`: one file per open proposal (written by the planner,
  atomically), `{"campaign", "proposal_id", "batch", "params", "predictions"}`; removed once
  the proposal is completed, failed or abandoned;
- `results/`: the instrument drops result files here, CSV or JSONL with the columns of
  `loop ingest` (usually `proposal_id` and the objectives). Write to a name starting with `.`
  or ending in `.tmp` / `.part` and rename when done: those names are not read.
- `results/done/`: files stored (or already stored) are moved here;
- `results/rejected/`: files refused (also any over 16 MiB) are moved here, with
  `<file>.error.txt` next to them naming every bad row and column. Nothing of a refused file
  is stored; fix it and drop it into `results/` again.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from db import ProposalRecord, Store
from loop.adapters.base import Bridge, register_bridge
from loop.errors import LoopError

__all__ = ["FolderBridge", "RESULT_SUFFIXES", "MAX_RESULT_BYTES"]

RESULT_SUFFIXES = (".csv", ".jsonl", ".json")
#: Result files larger than this are refused unread (the HTTP API's default body limit too).
MAX_RESULT_BYTES = 16 * 2**20
_PARTIAL = (".tmp", ".part", ".partial")


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@register_bridge("folder")
class FolderBridge(Bridge):
    def __init__(
        self,
        store: Store,
        campaign: str,
        *,
        folder: str | Path,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        super().__init__(store, campaign)
        self.root = Path(folder)
        self.max_bytes = max_bytes
        self.outbox = self.root / "proposals"
        self.inbox = self.root / "results"
        for d in (self.outbox, self.inbox, self.inbox / "done", self.inbox / "rejected"):
            d.mkdir(parents=True, exist_ok=True)

    def _file(self, pid: int) -> Path:
        return self.outbox / f"{self.campaign}-{pid}.json"

    def deliver(self, proposals: list[ProposalRecord]) -> None:
        open_ids = {p.id for p in proposals}
        for p in proposals:
            f = self._file(p.id)
            if not f.exists():
                doc = {
                    "campaign": self.campaign,
                    "proposal_id": p.id,
                    "batch": p.batch,
                    "params": p.params,
                    "predictions": p.predictions,
                }
                write_atomic(f, json.dumps(_finite(doc), indent=2) + "\n")
        prefix = f"{self.campaign}-"
        for f in self.outbox.glob(f"{prefix}*.json"):
            stem = f.stem[len(prefix) :]
            if stem.isdigit() and int(stem) not in open_ids:
                f.unlink(missing_ok=True)

    def _ready(self) -> list[Path]:
        files = []
        for f in sorted(self.inbox.iterdir()):
            if not f.is_file() or f.name.startswith(".") or f.name.endswith(_PARTIAL):
                continue
            files.append(f)
        return files

    def _take(self, f: Path) -> int:
        from loop.ingest import ingest

        if f.suffix.lower() not in RESULT_SUFFIXES:
            self._reject(
                f, f"{f.name}: not a result file", "drop CSV (.csv) or JSON lines (.jsonl) files"
            )
            return 0
        size = f.stat().st_size
        if size > self.max_bytes:
            self._reject(
                f,
                f"{f.name}: {size:,} bytes is over the limit of {self.max_bytes:,} bytes",
                "split the results into smaller files",
            )
            return 0
        fmt = "csv" if f.suffix.lower() == ".csv" else "jsonl"
        try:
            with self.store.session_scope(actor=f"folder:{self.root}") as session:
                res = ingest(session=session, name=self.campaign, path=f, fmt=fmt)  # type: ignore[arg-type]
        except LoopError as err:
            self._reject(f, str(err), "")
            return 0
        except OperationalError:
            raise  # the store is away: the file stays in results/ and is read again later
        except Exception as err:  # anything else a file provokes is refused, not fatal
            self._reject(f, f"{f.name}: {type(err).__name__}: {err}", "fix the file")
            return 0
        os.replace(f, self._free(self.inbox / "done" / f.name))
        return res.stored

    def _free(self, target: Path) -> Path:
        """`target`, or `target` with a counter when a file of that name was moved before."""
        k, out = 1, target
        while out.exists():
            k += 1
            out = target.with_name(f"{target.stem}.{k}{target.suffix}")
        return out

    def _reject(self, f: Path, message: str, hint: str) -> None:
        dest = self._free(self.inbox / "rejected" / f.name)
        os.replace(f, dest)
        text = (
            message + (f"\n  hint: {hint}" if hint else "") + "\nnothing of this file was stored\n"
        )
        dest.with_name(dest.name + ".error.txt").write_text(text, encoding="utf-8")

    def collect(self, timeout: float) -> int:
        stored = 0
        deadline = time.monotonic() + timeout
        while True:
            files = self._ready()
            for f in files:
                stored += self._take(f)
            if files or time.monotonic() >= deadline:
                return stored
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
