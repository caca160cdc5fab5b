"""Crystal graphs for CGCNN (Xie and Grossman 2018): pure, a pymatgen `Structure` in, tensors out.

- Nodes are the sites of the cell, each with a 92-dimensional one-hot atom feature built here
  from pymatgen's element data (see `atom_features`), not copied from CGCNN's `atom_init.json`.
- Edges join each site to its `max_neighbors` nearest neighbours within `radius` (periodic
  images included); a site with fewer keeps them all and is padded with edges to itself
  beyond the last Gaussian centre (expanded features ~0), as CGCNN pads.
- Edge features are the Gaussian expansion of the distance: `exp(-(d - mu_k)^2 / width^2)` for
  41 centres `mu_k` from 0 to 8 A (width 0.2 A).

`batch_graphs` joins graphs into one batch with index tensors, so a forward pass has no Python
loop over structures. `GraphCache` keys graphs by a hash of the structure, so featurizing a pool
again costs nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

__all__ = [
    "ATOM_FEATURE_DIM",
    "GraphSpec",
    "CrystalGraph",
    "GraphBatch",
    "atom_features",
    "structure_graph",
    "batch_graphs",
    "structure_key",
    "GraphCache",
    "GraphStore",
]


@dataclass(frozen=True)
class GraphSpec:
    """Neighbour and distance-expansion settings (CGCNN's defaults)."""

    radius: float = 8.0
    max_neighbors: int = 12
    dmin: float = 0.0
    dmax: float = 8.0
    centers: int = 41
    width: float = 0.2

    def __post_init__(self) -> None:
        if not (self.radius > 0 and self.max_neighbors >= 1 and self.centers >= 2):
            raise ValueError(f"invalid graph settings {self}")
        if not (self.width > 0 and self.dmax > self.dmin):
            raise ValueError(f"invalid distance expansion {self}")

    def expand(self, d: np.ndarray) -> np.ndarray:
        """`... -> ... x centers` Gaussian expansion of distances."""
        mu = np.linspace(self.dmin, self.dmax, self.centers)
        return np.exp(-((d[..., None] - mu) ** 2) / self.width**2)


# -- atom features ------------------------------------------------------------------------------

#: (name, categories): group 1-18 plus one for the f-block (no group), period 1-7, block s p d f,
#: valence electrons 1-12, and 10 equal bins of five continuous properties.
_CONTINUOUS = {
    "electronegativity": (0.5, 4.0),  # Pauling
    "covalent_radius": (0.25, 2.5),  # Angstrom
    "first_ionization": (3.5, 25.0),  # eV
    "electron_affinity": (-1.0, 3.7),  # eV
    "atomic_volume": (1.0, 80.0),  # cm^3 / mol (molar volume)
}
ATOM_FEATURE_DIM = 19 + 7 + 4 + 12 + 10 * len(_CONTINUOUS)
assert ATOM_FEATURE_DIM == 92


def _bin(value: float | None, lo: float, hi: float, n: int = 10) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return int(min(n - 1, max(0, math.floor((value - lo) / (hi - lo) * n))))


def _covalent_radius(symbol: str) -> float | None:
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    r = CovalentRadius.radius.get(symbol)
    return float(r) if r is not None else None


def _float(get: Any) -> float | None:
    try:
        v = get()
        return None if v is None else float(v)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None


@cache
def atom_features(symbol: str) -> tuple[float, ...]:
    """The 92 one-hot atom features of element `symbol`.

    Missing data (the electron affinity of a noble gas, say) leaves its block of 10 all zero.
    """
    import warnings

    from pymatgen.core import Element

    with warnings.catch_warnings():  # pymatgen warns for every missing property
        warnings.simplefilter("ignore")
        return _atom_features(Element(symbol))


def _atom_features(el: Any) -> tuple[float, ...]:
    symbol = el.symbol
    out = [0.0] * ATOM_FEATURE_DIM
    group = el.group if el.block != "f" else None
    out[(group - 1) if group else 18] = 1.0
    o = 19
    out[o + min(int(el.row), 7) - 1] = 1.0
    o += 7
    out[o + "spdf".index(el.block)] = 1.0
    o += 4
    if el.block == "f":
        valence = 3
    elif group is not None:
        valence = group if group <= 12 else group - 10
    else:
        valence = 2
    out[o + min(max(valence, 1), 12) - 1] = 1.0
    o += 12
    values = {
        "electronegativity": _float(lambda: el.X),
        "covalent_radius": _covalent_radius(symbol),
        "first_ionization": _float(lambda: el.ionization_energies[0]),
        "electron_affinity": _float(lambda: el.electron_affinity),
        "atomic_volume": _float(lambda: el.molar_volume),
    }
    for name, (lo, hi) in _CONTINUOUS.items():
        b = _bin(values[name], lo, hi)
        if b is not None:
            out[o + b] = 1.0
        o += 10
    return tuple(out)


# -- graphs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrystalGraph:
    """One structure: `n x 92` atom features, `n x M` neighbour indices, `n x M x G` edges."""

    atoms: torch.Tensor
    neighbors: torch.Tensor
    edges: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.atoms.shape[0])


def structure_graph(structure: Any, spec: GraphSpec = GraphSpec()) -> CrystalGraph:
    """The crystal graph of a pymatgen `Structure`.

    Raises:
        ValueError: A site is disordered (partial occupancy) or the cell has no sites.
    """
    if len(structure) == 0:
        raise ValueError("the structure has no sites")
    if not structure.is_ordered:
        raise ValueError("disordered structures (partial occupancies) have no crystal graph")
    n, m = len(structure), spec.max_neighbors
    atoms = np.array([atom_features(site.specie.symbol) for site in structure], dtype=np.float32)
    centers, points, _images, dist = structure.get_neighbor_list(spec.radius)
    nbr = np.repeat(np.arange(n)[:, None], m, axis=1)  # padding: edges to self
    dd = np.full((n, m), max(spec.radius, spec.dmax) + 1.0)  # beyond every centre: ~0
    if len(centers):
        order = np.lexsort((dist, centers))  # by site, then by distance
        c, p, d = centers[order], points[order], dist[order]
        starts = np.searchsorted(c, np.arange(n))
        rank = np.arange(len(c)) - starts[c]
        keep = rank < m
        nbr[c[keep], rank[keep]] = p[keep]
        dd[c[keep], rank[keep]] = d[keep]
    return CrystalGraph(
        atoms=torch.from_numpy(atoms),
        neighbors=torch.from_numpy(nbr.astype(np.int64)),
        edges=torch.from_numpy(spec.expand(dd).astype(np.float32)),
    )


@dataclass(frozen=True)
class GraphBatch:
    """Graphs joined: `N x 92` atoms, `N x M` neighbour indices into the batch, `N x M x G`
    edges, and `N` crystal indices telling which structure each atom belongs to."""

    atoms: torch.Tensor
    neighbors: torch.Tensor
    edges: torch.Tensor
    crystal: torch.Tensor
    n_crystals: int

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(
            self.atoms.to(device),
            self.neighbors.to(device),
            self.edges.to(device),
            self.crystal.to(device),
            self.n_crystals,
        )


def batch_graphs(graphs: Sequence[CrystalGraph]) -> GraphBatch:
    if not graphs:
        raise ValueError("no graphs to batch")
    sizes = torch.tensor([g.n_atoms for g in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes
    return GraphBatch(
        atoms=torch.cat([g.atoms for g in graphs]),
        neighbors=torch.cat([g.neighbors + int(o) for g, o in zip(graphs, offsets)]),
        edges=torch.cat([g.edges for g in graphs]),
        crystal=torch.repeat_interleave(torch.arange(len(graphs)), sizes),
        n_crystals=len(graphs),
    )


def structure_key(structure: Any, spec: GraphSpec = GraphSpec()) -> str:
    """A hash of the lattice, species and fractional coordinates (rounded), and the settings."""
    lat = np.round(np.asarray(structure.lattice.matrix, dtype=float), 6)
    frac = np.round(np.mod(np.asarray(structure.frac_coords, dtype=float), 1.0), 6) % 1.0
    species = ",".join(site.specie.symbol for site in structure)
    h = hashlib.sha256()
    h.update(repr(spec).encode())
    h.update(lat.tobytes())
    h.update(frac.tobytes())
    h.update(species.encode())
    return h.hexdigest()


class GraphCache:
    """Graphs by structure hash; each distinct structure is featurized once."""

    def __init__(self, spec: GraphSpec = GraphSpec()) -> None:
        self.spec = spec
        self._graphs: dict[str, CrystalGraph] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    def graphs(self, structures: Iterable[Any]) -> list[CrystalGraph]:
        out = []
        for s in structures:
            key = structure_key(s, self.spec)
            g = self._graphs.get(key)
            if g is None:
                g = self._graphs[key] = structure_graph(s, self.spec)
            out.append(g)
        return out


class GraphStore:
    """Every graph of a pool concatenated once; `select` gathers any subset as a `GraphBatch`
    with index arithmetic only (no loop over structures), so a network can take candidate
    indices as its input, as BoTorch sees structures (an index column)."""

    def __init__(self, graphs: Sequence[CrystalGraph]) -> None:
        if not graphs:
            raise ValueError("no graphs to store")
        whole = batch_graphs(graphs)
        sizes = torch.tensor([g.n_atoms for g in graphs])
        self.atoms = whole.atoms
        self.neighbors = whole.neighbors
        self.edges = whole.edges
        self.sizes = sizes
        self.offsets = torch.cumsum(sizes, 0) - sizes

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    _FIELDS = ("atoms", "neighbors", "edges", "sizes")

    def state(self) -> dict[str, torch.Tensor]:
        """The store's tensors, to save with `torch.save` (loads with `weights_only=True`)."""
        return {k: getattr(self, k).cpu() for k in self._FIELDS}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> GraphStore:
        """A store from `state()`; raises `ValueError` when the tensors do not fit together."""
        if set(state) != set(cls._FIELDS):
            raise ValueError(f"a graph store holds {cls._FIELDS}, got {sorted(state)}")
        sizes = state["sizes"].long()
        n = int(sizes.sum())
        if any(int(state[k].shape[0]) != n for k in ("atoms", "neighbors", "edges")):
            raise ValueError("graph store tensors disagree on the number of atoms")
        self = cls.__new__(cls)
        self.atoms = state["atoms"]
        self.neighbors = state["neighbors"].long()
        self.edges = state["edges"]
        self.sizes = sizes
        self.offsets = torch.cumsum(sizes, 0) - sizes
        return self

    def to(self, device: torch.device | str) -> GraphStore:
        for name in ("atoms", "neighbors", "edges", "sizes", "offsets"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def select(self, idx: torch.Tensor) -> GraphBatch:
        """The crystals `idx` (`B` indices, repeats allowed) as one batch."""
        idx = idx.reshape(-1).long().to(self.sizes.device)
        counts = self.sizes[idx]
        total = int(counts.sum())
        first = torch.cumsum(counts, 0) - counts  # where each crystal starts in the batch
        crystal = torch.repeat_interleave(torch.arange(len(idx), device=idx.device), counts)
        within = torch.arange(total, device=idx.device) - first[crystal]
        atom = self.offsets[idx][crystal] + within  # global atom id of each batch atom
        # a neighbour is an atom of the same crystal: shift it by the crystal's new start
        local = self.neighbors[atom] - self.offsets[idx][crystal].unsqueeze(-1)
        return GraphBatch(
            atoms=self.atoms[atom],
            neighbors=local + first[crystal].unsqueeze(-1),
            edges=self.edges[atom],
            crystal=crystal,
            n_crystals=len(idx),
        )
