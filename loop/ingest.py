"""The ingest side of the loop: validate a submission of measurements and store it whole.

A row refers to a proposal (`proposal_id`) or gives the parameters directly. Its idempotency key
is its `measurement_id` when given; else, for a proposal row, the proposal (replicate rows aside);
else a hash of the row's content and its occurrence among identical rows of the submission. So
ingesting the same file again changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from db import NewMeasurement, crud
from db.queue import lock_campaign
from loop.errors import IngestError
from loop.hull import HullError, ReferenceHull
from loop.space import as_float, check_params, input_columns
from loop.spec import RESERVED_COLUMNS, CampaignSpec, CompositionParameter, parse_spec
from loop.structpool import STRUCTURE_FIELDS

__all__ = ["IngestResult", "ingest", "ingest_rows", "read_rows", "pool_key"]

#: Ids are 32-bit signed integers in every store.
MAX_ID = 2**31 - 1
#: Column sizes of the measurement table (source, and idempotency key less its `id:` prefix).
MAX_SOURCE = 100
MAX_MEASUREMENT_ID = 200

Format = Literal["csv", "jsonl"]
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}


@dataclass
class IngestResult:
    """What one submission did."""

    source: str
    rows: int
    stored: int
    already: int
    measurement_ids: list[int] = field(default_factory=list)


def pool_key(params: dict[str, Any]) -> tuple[Any, ...]:
    """A hashable key matching a parameter dict to a pool candidate despite float text."""
    return tuple(
        (k, float(f"{v:.10g}") if isinstance(v, (int, float)) else v)
        for k, v in sorted(params.items())
    )


def read_rows(
    text: str, source: str, fmt: Format | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Parse CSV or JSONL text into `(line number, row)` pairs.

    The format follows `fmt`, else the file extension, else the first character (`{` is JSONL).
    """
    if fmt is None:
        suffix = Path(source).suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            fmt = "jsonl"
        elif suffix in (".csv", ".txt"):
            fmt = "csv"
        else:
            fmt = "jsonl" if text.lstrip().startswith("{") else "csv"
    rows: list[tuple[int, dict[str, Any]]] = []
    if fmt == "jsonl":
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except RecursionError:
                raise IngestError(
                    f"{source}, line {i}: JSON nested too deeply",
                    "each line of a JSONL file must be one flat JSON object",
                ) from None
            except json.JSONDecodeError as err:
                raise IngestError(
                    f"{source}, line {i}: not valid JSON ({err.msg})",
                    "each line of a JSONL file must be one JSON object",
                ) from None
            if not isinstance(obj, dict):
                raise IngestError(
                    f"{source}, line {i}: expected a JSON object, got {type(obj).__name__}",
                    "write one object per line",
                )
            rows.append((i, obj))
        return rows
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise IngestError(
                f"{source}: the file is empty", "add a header row and data rows"
            ) from None
        header = [h.strip() for h in header]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise IngestError(
                f"{source}, line 1: columns {dup} appear more than once",
                "keep one column per name",
            )
        line = reader.line_num + 1
        for rec in reader:
            if any(c.strip() for c in rec):
                if len(rec) != len(header):
                    raise IngestError(
                        f"{source}, line {line}: {len(rec)} fields, the header has {len(header)}",
                        "quote values that hold commas; fill empty cells",
                    )
                rows.append((line, dict(zip(header, rec))))
            line = reader.line_num + 1
    except csv.Error as err:
        raise IngestError(
            f"{source}, line {reader.line_num}: not valid CSV ({err})",
            "save the file as plain CSV: one record per line, quotes around values that hold "
            "commas, quotes or line breaks",
        ) from None
    return rows


def _parse_formula(text: str, p: CompositionParameter) -> tuple[dict[str, float], str | None]:
    from pymatgen.core import Composition
    from pymatgen.core.periodic_table import Element

    try:
        comp = Composition(text)
    except (ValueError, KeyError) as err:
        return {}, (
            f"{text!r} is not a formula pymatgen can read ({err}); write it like Fe2O3 or "
            "Li0.25Fe0.25O0.5"
        )
    # dummy species print with an oxidation state (Xx0+); name them as written
    bad = [str(getattr(el, "symbol", el)) for el in comp.elements if not isinstance(el, Element)]
    if bad:
        return {}, f"{text!r} holds {bad}, which are not chemical elements"
    frac = comp.fractional_composition.get_el_amt_dict()
    outside = sorted(set(frac) - set(p.elements))
    if outside:
        return {}, (
            f"{text!r} holds {outside}, outside the elements {p.elements} of '{p.name}'; "
            "this campaign can only store compositions of those elements"
        )
    return {el: float(frac.get(el, 0.0)) * p.total for el in p.elements}, None


def _structure_formula(params: dict[str, Any], name: str | None, pool: Any) -> str | None:
    """The reduced formula of the structure a row's parameters name (None if they name none;
    the row's other problems are reported then)."""
    if params.get("formula"):
        return str(params["formula"])
    if name is None or name not in params:
        return None
    got = pool()[0].get(int(params[name]))
    return None if got is None else str(got["formula"])


def _resolve_structure(
    row: dict[str, Any],
    given: dict[str, Any],
    name: str,
    pool: Any,
) -> list[str]:
    """Turn a structure named by its id (the `id` column) into its pool index in `given`.

    The `name` column holds the index only: ids are often numbers too (perov_5's material ids
    are), so reading one column both ways would be ambiguous. Returns the problems found.
    """
    raw, rid = row.get(name), row.get("id")
    if raw not in (None, "") and as_float(raw) is None:
        return [
            f"column '{name}': {raw!r} is not a pool index (an integer); to name a structure by "
            "its id, put the id in a column 'id'"
        ]
    if rid is None or str(rid).strip() == "":
        return []  # an index, checked against the bounds like any parameter
    idx = pool()[1].get(str(rid).strip())
    if idx is None:
        return [
            f"column 'id': no structure of the pool has id {str(rid).strip()!r}; use an id "
            "from the proposal or the pool file"
        ]
    if name in given and as_float(given[name]) != idx:
        return [
            f"column '{name}': index {given[name]} is not structure {str(rid).strip()!r} "
            f"(index {idx}); keep one of the two columns"
        ]
    given[name] = idx
    return []


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def ingest_rows(
    *,
    session: Session,
    name: str,
    rows: list[tuple[int, dict[str, Any]]],
    source: str = "-",
    default_source: str = "experiment",
    file_sha256: str | None = None,
) -> IngestResult:
    """Validate and store rows of measurements for campaign `name`, all or nothing.

    Raises:
        IngestError: Listing every bad row and column; nothing is stored.
    """
    rec = crud.get_campaign(session=session, name=name)
    # concurrent submissions of one campaign are checked against each other's stored keys
    lock_campaign(session=session, campaign_id=rec.id, kind="write")
    spec: CampaignSpec = parse_spec(rec.spec, f"campaign '{name}'")
    inputs = input_columns(spec)
    comps = {p.name: p for p in spec.parameters if isinstance(p, CompositionParameter)}
    outcomes = spec.outcome_names
    allowed = (
        set(inputs) | set(comps) | set(outcomes) | {f"{o}_std" for o in outcomes} | RESERVED_COLUMNS
    )
    st_name = spec.structures.name if spec.structures is not None else None
    if st_name is not None:
        # a structure is named by its pool index or id (the `structure` or `id` column); the
        # formula and CIF a proposal carries may come back with the results
        allowed |= set(STRUCTURE_FIELDS)
    hull = spec.hull
    if hull is not None:
        allowed.add(hull.energy)
    hull_cache: list[Any] = []

    def reference_hull() -> Any:
        if not hull_cache:
            assert hull is not None
            hull_cache.append(ReferenceHull(hull.references))
        return hull_cache[0]

    # a structure pool's candidates by index and by id, read once when a row needs them
    st_pool: dict[int, dict[str, Any]] = {}
    st_ids: dict[str, int] = {}

    def structure_pool() -> tuple[dict[int, dict[str, Any]], dict[str, int]]:
        if not st_pool:
            for idx, key, ps in crud.list_candidates(session=session, campaign_id=rec.id):
                st_pool[idx] = ps
                if key is not None:
                    st_ids[key] = idx
        return st_pool, st_ids

    problems: list[str] = []
    if not rows:
        raise IngestError(f"{source}: no data rows", "add at least one row of results")

    unknown: dict[str, int] = {}
    for line, row in rows:
        for col in row:
            if col not in allowed and col not in unknown:
                unknown[col] = line
    for col, line in unknown.items():
        problems.append(
            f"{source}, line {line}, column '{col}': unknown column; the campaign's columns are "
            f"{', '.join(inputs + outcomes)} (plus {', '.join(sorted(RESERVED_COLUMNS))} and "
            "<objective>_std); rename or remove it"
        )

    # the pool's index by parameters, read only for rows that name no proposal (a job's result
    # carries its candidate, and a pool can hold hundreds of thousands of rows)
    pool_index: dict[tuple[Any, ...], int] | None = None
    prop_cache: dict[int, Any] = {}
    prepared: list[tuple[int, NewMeasurement, str]] = []  # (line, item, identity for dedupe)
    occurrences: dict[str, int] = {}

    for line, row in rows:
        where = f"{source}, line {line}"
        bad: list[str] = []
        # -- proposal reference
        proposal = None
        pid_raw = row.get("proposal_id")
        if pid_raw not in (None, ""):
            pid = as_float(pid_raw)
            if pid is None or pid != int(pid) or not 1 <= pid <= MAX_ID:
                bad.append(f"column 'proposal_id': {pid_raw!r} is not a proposal id (an integer)")
            else:
                pid = int(pid)
                if pid not in prop_cache:
                    prop_cache[pid] = crud.get_proposal(session=session, proposal_id=pid)
                proposal = prop_cache[pid]
                if proposal is None or proposal.campaign_id != rec.id:
                    bad.append(
                        f"column 'proposal_id': proposal {pid} does not belong to "
                        f"campaign '{name}'; check the id with `loop status {name}`"
                    )
                    proposal = None
        # -- parameters
        given = {c: row[c] for c in inputs if c in row and row[c] not in (None, "")}
        if st_name is not None:
            bad += _resolve_structure(row, given, st_name, structure_pool)
        reported: set[str] = set()  # element columns a bad formula already speaks for
        for cname, p in comps.items():
            if cname in row and row[cname] not in (None, ""):
                fr, err = _parse_formula(str(row[cname]), p)
                if err:
                    bad.append(f"column '{cname}': {err}")
                    reported.update(p.elements)
                else:
                    given.update(fr)
        if proposal is not None:
            params = dict(proposal.params)
            if given:
                coerced, errs = check_params(spec, {**params, **given})
                if errs or not _same(coerced, params):
                    bad.append(
                        f"the parameters differ from those of proposal {proposal.id} "
                        f"({params}); drop the parameter columns or fix the proposal_id"
                    )
        else:
            missing = [c for c in inputs if c not in given and c not in reported]
            if reported and not missing:
                params = {}
            elif missing and pid_raw not in (None, ""):
                params = {}  # the bad proposal_id is reported; no noise about parameters
            elif missing:
                bad.append(f"missing parameter column(s) {missing}; give them or a proposal_id")
                params = {}
            else:
                params, errs = check_params(spec, given)
                bad += [f"column '{e.split(':', 1)[0]}':{e.split(':', 1)[1]}" for e in errs]
        # -- outcomes
        values: dict[str, float] = {}
        stds: dict[str, float] = {}
        if hull is not None and row.get(hull.energy) not in (None, ""):
            e = as_float(row[hull.energy])
            if e is None:
                bad.append(f"column '{hull.energy}': {row[hull.energy]!r} is not a finite number")
            else:
                values[hull.energy] = e  # the measured energy is kept beside its hull distance
        for o in outcomes:
            if (
                hull is not None
                and o == hull.objective
                and row.get(o) in (None, "")
                and hull.energy in values
            ):
                formula = _structure_formula(params, st_name, structure_pool)
                if formula is not None:
                    try:
                        values[o] = reference_hull().distance(formula, values[hull.energy])
                    except HullError as err:
                        bad.append(f"column '{hull.energy}': {err.message}; {err.hint}")
                continue
            if o not in row or row[o] in (None, ""):
                extra = f" (or '{hull.energy}')" if hull is not None and o == hull.objective else ""
                bad.append(f"column '{o}': missing value{extra}; every row needs {outcomes}")
                continue
            v = as_float(row[o])
            if v is None:
                bad.append(f"column '{o}': {row[o]!r} is not a finite number")
            else:
                values[o] = v
            sraw = row.get(f"{o}_std")
            if sraw not in (None, ""):
                s = as_float(sraw)
                if s is None or s < 0:
                    bad.append(f"column '{o}_std': {sraw!r} must be a number >= 0")
                else:
                    stds[o] = s
        # -- bookkeeping columns
        rep_raw = str(row.get("replicate", "")).strip().lower()
        if rep_raw not in _TRUE | _FALSE:
            bad.append(f"column 'replicate': {row.get('replicate')!r} is not true/false")
        replicate = rep_raw in _TRUE
        measured_at = None
        if row.get("measured_at") not in (None, ""):
            try:
                measured_at = datetime.fromisoformat(str(row["measured_at"]).strip())
                if measured_at.tzinfo is None:
                    measured_at = measured_at.replace(tzinfo=timezone.utc)
                # SQLite keeps no offset: store the instant in UTC so it reads back right
                measured_at = measured_at.astimezone(timezone.utc)
            except ValueError:
                bad.append(
                    f"column 'measured_at': {row['measured_at']!r} is not an ISO 8601 time "
                    "(e.g. 2026-05-01T14:30:00)"
                )
        src = str(row.get("source") or default_source).strip()
        if len(src) > MAX_SOURCE:
            bad.append(f"column 'source': {len(src)} characters; use at most {MAX_SOURCE}")
        mid = row.get("measurement_id")
        if mid not in (None, "") and len(str(mid).strip()) > MAX_MEASUREMENT_ID:
            bad.append(
                f"column 'measurement_id': {len(str(mid).strip())} characters; use at most "
                f"{MAX_MEASUREMENT_ID}"
            )
        if bad:
            problems += [f"{where}, {b}" for b in bad]
            continue
        prov = {
            k: str(row[k])
            for k in ("operator", "instrument", "raw_sha256", "notes")
            if row.get(k) not in (None, "")
        }
        prov.update({"file": source, "line": line})
        if file_sha256:
            prov["file_sha256"] = file_sha256
        content = json.dumps(
            [proposal.id if proposal else None, params, values, stds, src],
            sort_keys=True,
            default=str,
        )
        if mid not in (None, ""):
            key = f"id:{str(mid).strip()}"
        elif proposal is not None and not replicate:
            key = f"proposal:{proposal.id}"
        else:
            digest = hashlib.sha256(content.encode()).hexdigest()[:32]
            k = occurrences.get(digest, 0) + 1
            occurrences[digest] = k
            key = f"row:{digest}:{k}"
        cidx = None
        if proposal is not None and proposal.candidate_idx is not None:
            cidx = proposal.candidate_idx
        elif st_name is not None:
            cidx = int(params[st_name])
            params = dict(structure_pool()[0][cidx])
        elif spec.is_pool:
            if pool_index is None:
                pool_index = {
                    pool_key(ps): idx
                    for idx, _key, ps in crud.list_candidates(session=session, campaign_id=rec.id)
                }
            cidx = pool_index.get(pool_key(params))
        prepared.append(
            (
                line,
                NewMeasurement(
                    params=params,
                    values=values,
                    stds=stds,
                    idempotency_key=key,
                    proposal_id=proposal.id if proposal else None,
                    candidate_idx=cidx,
                    source=src,
                    provenance=prov,
                    measured_at=measured_at,
                ),
                content,
            )
        )

    # -- idempotency: against the store and within the submission
    stored = crud.measurements_by_key(
        session=session, campaign_id=rec.id, keys=[m.idempotency_key for _, m, _ in prepared]
    )
    new: list[NewMeasurement] = []
    seen: dict[str, tuple[int, NewMeasurement]] = {}
    already = 0
    for line, m, _content in prepared:
        old = stored.get(m.idempotency_key)
        if old is not None:
            if _same(old.values, m.values) and _same(old.params, m.params):
                already += 1
                continue
            what = (
                f"proposal {m.proposal_id} already has a result ({old.values})"
                if m.idempotency_key.startswith("proposal:")
                else f"measurement_id {m.idempotency_key[3:]!r} is already stored with {old.values}"
            )
            fix = (
                "mark the row replicate=true if it is a second measurement"
                if m.idempotency_key.startswith("proposal:")
                else "give the new measurement its own measurement_id"
            )
            problems.append(f"{source}, line {line}: {what}, this row says {m.values}; {fix}")
            continue
        if m.idempotency_key in seen:
            first_line, first = seen[m.idempotency_key]
            if _same(first.values, m.values) and _same(first.params, m.params):
                already += 1
                continue
            problems.append(
                f"{source}, line {line}: same {m.idempotency_key.split(':')[0]} as "
                f"line {first_line} with other values; mark replicates "
                "replicate=true or give each its own measurement_id"
            )
            continue
        seen[m.idempotency_key] = (line, m)
        new.append(m)
    if problems:
        raise IngestError(
            f"{source}: {len(problems)} problem(s); nothing was stored",
            "fix the rows listed and ingest the whole file again",
            problems,
        )
    # a result for a failed or abandoned proposal is still a measurement: it is kept and the
    # proposal completed, and the event says which proposals came back late
    late = {
        m.proposal_id: prop_cache[m.proposal_id].status
        for m in new
        if m.proposal_id is not None and prop_cache[m.proposal_id].status in ("failed", "abandoned")
    }
    out = crud.add_measurements(session=session, campaign_id=rec.id, items=new)
    if out:
        payload: dict[str, Any] = {
            "source": source,
            "stored": len(out),
            "already": already,
            "file_sha256": file_sha256,
            "proposals": sorted({m.proposal_id for m in new if m.proposal_id is not None}),
        }
        if late:
            payload["completed_after"] = {str(k): v for k, v in sorted(late.items())}
        crud.add_event(session=session, campaign_id=rec.id, kind="ingested", payload=payload)
    return IngestResult(source, len(rows), len(out), already, [m.id for m in out])


def ingest(
    *,
    session: Session,
    name: str,
    path: str | Path,
    text: str | None = None,
    fmt: Format | None = None,
    default_source: str = "experiment",
    label: str = "<stdin>",
) -> IngestResult:
    """Ingest a CSV or JSONL file (`path`), or `text` when `path` is '-'.

    Args:
        label: How errors name `text` (stdin, an HTTP request, a file of a watched folder).
    """
    source = str(path)
    if text is None:
        p = Path(path)
        if not p.is_file():
            raise IngestError(f"{p}: no such file", "give the path of a CSV or JSONL file, or '-'")
        data = p.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise IngestError(
                f"{p}: not UTF-8 text", "save the file as UTF-8 CSV or JSONL"
            ) from None
    sha = hashlib.sha256(text.encode()).hexdigest()
    rows = read_rows(text, source if source != "-" else label, fmt)
    return ingest_rows(
        session=session,
        name=name,
        rows=rows,
        source=source if source != "-" else label,
        default_source=default_source,
        file_sha256=sha,
    )
