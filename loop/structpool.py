"""Crystal-structure pools: read a `[structures]` file or folder into candidates.

Every structure is parsed with pymatgen, refused with its file, row and the fix when it does not
parse or is disordered (a crystal graph needs one species per site), and stored as candidate
params `{name: index, "id": ..., "formula": ..., "cif": ...}`: the index is the design column
BoTorch sees, the CIF is the crystal a simulation worker or a lab receives. Identical structures
(same lattice, species and positions, to 1e-6) are one candidate, under the first one's id.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loop.errors import SpecError
from loop.spec import CampaignSpec, IntParameter, parse_spec

__all__ = [
    "STRUCTURE_FIELDS",
    "read_structures",
    "structure_rows",
    "parse_cif",
]

#: Keys every structure candidate carries besides its index column.
STRUCTURE_FIELDS = ("id", "formula", "cif")

_CIF_SUFFIXES = (".cif",)
_POSCAR_NAMES = ("POSCAR", "CONTCAR")
_JSON_SUFFIXES = (".json", ".json.gz")


def parse_cif(text: str) -> Any:
    """A pymatgen `Structure` from CIF text; `ValueError` with pymatgen's reason otherwise."""
    import warnings

    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns on every rounded occupancy
        try:
            return Structure.from_str(text, fmt="cif")
        except Exception as err:  # noqa: BLE001 - pymatgen raises many kinds on bad CIF
            raise ValueError(f"not a readable CIF ({type(err).__name__}: {err})") from None


def _structure_from_dict(d: Any) -> Any:
    from pymatgen.core import Structure

    if not isinstance(d, dict):
        raise ValueError(f"expected a pymatgen Structure dict, got {type(d).__name__}")
    try:
        return Structure.from_dict(d)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"not a pymatgen Structure dict ({type(err).__name__}: {err})") from None


def _load_json(path: Path) -> Any:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return json.load(fh)


def _iter_csv(path: Path, cif_column: str, key: str | None) -> Iterator[tuple[str, str, Any]]:
    csv.field_size_limit(1 << 30)  # a CIF cell is longer than csv's default limit
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in [cif_column] + ([key] if key else []) if c not in header]
        if missing:
            raise SpecError(
                f"{path}: column(s) {missing} are not in the file (columns: {header})",
                "set structures.cif_column / structures.key to the file's column names",
            )
        for i, row in enumerate(reader, start=2):
            where = f"{path}, line {i}, column '{cif_column}'"
            rid = (row.get(key) or "").strip() if key else ""
            yield where, rid or f"row{i - 1}", ("cif", row.get(cif_column) or "")


def _iter_json(path: Path) -> Iterator[tuple[str, str, Any]]:
    data = _load_json(path)
    if isinstance(data, dict) and isinstance(data.get("structures"), list):
        data = data["structures"]
    if not isinstance(data, list):
        raise SpecError(
            f"{path}: expected a JSON list of pymatgen Structure dicts",
            'write the file as [{"@module": "pymatgen.core.structure", ...}, ...]',
        )
    for i, d in enumerate(data):
        yield f"{path}, item {i}", f"item{i}", ("dict", d)


def _iter_folder(path: Path) -> Iterator[tuple[str, str, Any]]:
    files = sorted(p for p in path.iterdir() if p.is_file())
    used = 0
    for f in files:
        name = f.name
        if name.lower().endswith(_CIF_SUFFIXES):
            used += 1
            yield str(f), f.stem, ("cif", f.read_text(encoding="utf-8", errors="replace"))
        elif name.startswith(_POSCAR_NAMES) or name.lower().endswith(".vasp"):
            used += 1
            yield str(f), f.stem if f.suffix else name, ("poscar", f)
        elif name.lower().endswith(_JSON_SUFFIXES):
            used += 1
            yield str(f), name.split(".")[0], ("dict", _load_json(f))
    if not used:
        raise SpecError(
            f"{path}: the folder holds no .cif, POSCAR, .vasp or .json structure files",
            "point structures.path at a folder of structure files, a CSV with a CIF column or "
            "a JSON list of pymatgen structures",
        )


def _iter_cif_file(path: Path) -> Iterator[tuple[str, str, Any]]:
    """Each `data_` block of one CIF file, named by its block name."""
    text = path.read_text(encoding="utf-8", errors="replace")
    blocks: list[tuple[int, str, list[str]]] = []
    for no, line in enumerate(text.splitlines(), 1):
        if line.lstrip().lower().startswith("data_"):
            blocks.append((no, line.strip()[5:].strip() or f"block{len(blocks) + 1}", []))
        if blocks:
            blocks[-1][2].append(line)
    if not blocks:
        raise SpecError(
            f"structure pool {path}: no `data_` block, so no structure",
            "give a CIF with one data_ block per structure",
        )
    for no, name, lines in blocks:
        yield f"{path}, block data_{name} (line {no})", name, ("cif", "\n".join(lines) + "\n")


def _parse(kind: str, payload: Any) -> Any:
    if kind == "cif":
        if not str(payload).strip():
            raise ValueError("the CIF is empty")
        return parse_cif(str(payload))
    if kind == "poscar":
        from pymatgen.core import Structure

        try:
            return Structure.from_file(payload)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"not a readable POSCAR ({type(err).__name__}: {err})") from None
    return _structure_from_dict(payload)


def structure_rows(
    path: Path,
    *,
    cif_column: str = "cif",
    key: str | None = None,
    name: str = "structure",
    max_candidates: int = 200_000,
) -> list[tuple[str, dict[str, Any]]]:
    """The `(id, params)` candidates of a structure file or folder, in file order.

    Raises:
        SpecError: The path is missing or unreadable, or any structure does not parse or is
            disordered (all problems at once, up to 10 named), or the pool is too large.
    """
    from surrogates.crystal_graph import structure_key

    if not path.exists():
        raise SpecError(
            f"structure pool {path} does not exist",
            "fix structures.path (relative paths start at the spec file's folder)",
        )
    if path.is_dir():
        items = _iter_folder(path)
    elif path.name.lower().endswith(_JSON_SUFFIXES):
        items = _iter_json(path)
    elif path.suffix.lower() == ".csv":
        items = _iter_csv(path, cif_column, key)
    elif path.name.lower().endswith(_CIF_SUFFIXES):
        items = _iter_cif_file(path)
    elif path.name.startswith(_POSCAR_NAMES) or path.name.lower().endswith(".vasp"):
        raise SpecError(
            f"structure pool {path}: a POSCAR holds one structure, and a pool needs several",
            "put the POSCAR files in one folder and point structures.path at the folder",
        )
    else:
        raise SpecError(
            f"structure pool {path}: unknown file type '{path.suffix}'",
            "use a CSV with a CIF column, a .json list of pymatgen structures, a CIF (one "
            "data_ block per structure) or a folder of CIF, POSCAR or JSON files",
        )
    rows: list[tuple[str, dict[str, Any]]] = []
    seen_keys: dict[str, int] = {}
    seen_ids: set[str] = set()
    problems: list[str] = []
    n_read = 0
    for where, rid, (kind, payload) in items:
        n_read += 1
        if n_read > max_candidates:
            raise SpecError(
                f"structure pool {path} holds more than structures.max_candidates = "
                f"{max_candidates:,} structures (the pool is stored in SQL)",
                "split the pool, or raise structures.max_candidates",
            )
        try:
            s = _parse(kind, payload)
        except (ValueError, OSError) as err:
            problems.append(f"{where}: {err}")
            continue
        if not s.is_ordered:
            problems.append(
                f"{where}: the structure is disordered (partial occupancies, "
                f"{s.composition.formula}); a crystal graph needs one species per site, so "
                "order it (e.g. pymatgen OrderDisorderedStructureTransformation) or drop it"
            )
            continue
        if len(s) == 0:
            problems.append(f"{where}: the structure has no sites")
            continue
        h = structure_key(s)
        if h in seen_keys:
            continue  # identical structures are one candidate
        if rid in seen_ids:
            problems.append(
                f"{where}: id {rid!r} is used by another structure; ids name one structure each"
            )
            continue
        seen_ids.add(rid)
        seen_keys[h] = len(rows)
        rows.append(
            (
                rid,
                {
                    name: len(rows),
                    "id": rid,
                    "formula": s.composition.reduced_formula,
                    "cif": s.to(fmt="cif") if kind != "cif" else str(payload),
                },
            )
        )
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise SpecError(
            f"{len(problems)} structure(s) in {path} cannot be used: "
            + "; ".join(problems[:10])
            + more,
            "fix or remove those structures; nothing was stored",
        )
    if len(rows) < 2:
        raise SpecError(
            f"structure pool {path} holds {len(rows)} distinct structure(s)",
            "a campaign needs at least two candidates to choose between",
        )
    return rows


def substituted_rows(st: Any, base_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """The `(key, params)` candidates a `[structures.substitute]` table generates."""
    from loop.structgen import SubstitutionError, perovskite_prototype, substitute

    sub = st.substitute
    prototypes: dict[str, Any] = {}
    for p in sub.prototypes:
        if p == "perovskite":
            prototypes[p] = perovskite_prototype()
            continue
        path = Path(p) if Path(p).is_absolute() else base_dir / p
        if not path.is_file():
            raise SpecError(
                f"structures.substitute.prototypes: {path} does not exist",
                'name "perovskite" (built in) or a CIF, POSCAR or pymatgen JSON file',
            )
        try:
            if path.name.lower().endswith(_JSON_SUFFIXES):
                s = _structure_from_dict(_load_json(path))
            else:
                s = _parse("cif" if path.suffix.lower() == ".cif" else "poscar", _read(path))
        except (ValueError, OSError) as err:
            raise SpecError(
                f"structures.substitute.prototypes: {path}: {err}", "fix or replace the file"
            ) from None
        prototypes[path.stem] = s
    try:
        made = substitute(
            prototypes,
            sub.sites,
            charge_balanced=sub.charge_balanced,
            radius_rule=sub.radius_rule,
            tolerance=tuple(sub.tolerance),
            radii=sub.radii or None,
            max_structures=st.max_candidates,
        )
    except SubstitutionError as err:
        raise SpecError(f"structures.substitute: {err.message}", err.hint) from None
    if len(made) < 2:
        raise SpecError(
            f"structures.substitute makes {len(made)} structure(s) after the charge-balance "
            "and radius filters",
            "add elements to sites, or relax charge_balanced / radius_rule / tolerance",
        )
    return [
        (
            key,
            {
                st.name: i,
                "id": key,
                "formula": s.composition.reduced_formula,
                "cif": s.to(fmt="cif"),
            },
        )
        for i, (key, s) in enumerate(made)
    ]


def _read(path: Path) -> Any:
    return path.read_text(encoding="utf-8", errors="replace") if path.suffix == ".cif" else path


def read_structures(
    spec: CampaignSpec, base_dir: Path
) -> tuple[CampaignSpec, list[tuple[str | None, dict[str, Any]]]]:
    """Read a `[structures]` spec's pool.

    Returns:
        The spec with its design parameter (the pool index, `0..N-1`) filled in, and the
        `(id, params)` candidates in pool order.
    """
    st = spec.structures
    assert st is not None
    raw = spec.model_dump(mode="json", exclude_none=True)
    if st.substitute is not None:
        rows = substituted_rows(st, base_dir)
    else:
        assert st.path is not None
        path = Path(st.path)
        if not path.is_absolute():
            path = base_dir / path
        rows = structure_rows(
            path,
            cif_column=st.cif_column,
            key=st.key,
            name=st.name,
            max_candidates=st.max_candidates,
        )
        raw["structures"]["path"] = str(path.resolve())
    raw["parameters"] = [
        IntParameter(name=st.name, low=0, high=len(rows) - 1).model_dump(mode="json")
    ]
    out: list[tuple[str | None, dict[str, Any]]] = list(rows)
    return parse_spec(raw, f"spec of '{spec.name}'"), out
