"""Crystal graphs and CGCNN: neighbour lists on known cells, periodic images, padding, the 92
atom features, batching, and a permutation-invariant pooled output."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from surrogates.cgcnn import CGCNN, CGCNNConfig
from surrogates.crystal_graph import (
    ATOM_FEATURE_DIM,
    GraphCache,
    GraphSpec,
    atom_features,
    batch_graphs,
    structure_graph,
    structure_key,
)

# the shared data sits beside the repository (see ../shared/data/README.md)
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _nacl() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def test_rock_salt_neighbours_are_the_six_nearest_then_the_twelve_next() -> None:
    s = _nacl().get_primitive_structure()  # 2 sites; every neighbour is a periodic image
    g = structure_graph(s)
    assert g.atoms.shape == (2, ATOM_FEATURE_DIM) and g.neighbors.shape == (2, 12)
    assert g.edges.shape == (2, 12, 41)
    # nearest 6 at a/2 = 2.82 A (the other species), then 12 at a/sqrt(2) = 3.99 A (same species)
    centres = np.linspace(0, 8, 41)
    d = centres[g.edges.numpy().argmax(-1)]
    assert np.allclose(d[:, :6], 2.8, atol=0.11) and np.allclose(d[:, 6:], 4.0, atol=0.11)
    na, cl = 0, 1
    assert (g.neighbors[na, :6] == cl).all() and (g.neighbors[na, 6:] == na).all()


def test_few_neighbours_are_padded_to_self_beyond_the_radius() -> None:
    s = Structure(Lattice.cubic(3.0), ["Cu"], [[0, 0, 0]])
    g = structure_graph(s, GraphSpec(radius=3.5, max_neighbors=12))
    # 6 neighbours at 3.0 A inside 3.5 A; 6 padded edges to itself with ~0 features
    assert (g.neighbors == 0).all()
    assert float(g.edges[0, 6:].max()) < 1e-8 and float(g.edges[0, :6].max()) > 0.9


def test_atom_features_are_92_one_hot_blocks() -> None:
    for symbol in ("H", "O", "Na", "Fe", "La", "U", "Pb"):
        f = np.array(atom_features(symbol))
        assert f.shape == (92,) and set(np.unique(f)) <= {0.0, 1.0}
        assert f[:19].sum() == 1 and f[19:26].sum() == 1 and f[26:30].sum() == 1
    assert atom_features("Fe") != atom_features("Co")
    assert np.array(atom_features("La"))[18] == 1  # f-block: no group


def test_cgcnn_shapes_batching_and_permutation_invariance() -> None:
    torch.manual_seed(0)
    a = _nacl()
    b = Structure(
        Lattice.cubic(3.9),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    model = CGCNN(CGCNNConfig(n_conv=3)).eval()
    out = model(batch_graphs([structure_graph(a), structure_graph(b)]))
    assert out.shape == (2, 1) and torch.isfinite(out).all()
    # the same crystal with its sites listed in another order gives the same output
    perm = Structure.from_sites([b[i] for i in (3, 0, 4, 2, 1)])
    again = model(batch_graphs([structure_graph(a), structure_graph(perm)]))
    assert torch.allclose(out, again, atol=1e-5)
    # a batch equals its crystals one at a time
    alone = model(batch_graphs([structure_graph(b)]))
    assert torch.allclose(alone[0], out[1], atol=1e-5)
    assert structure_key(b) != structure_key(a)


def test_graph_cache_featurizes_each_structure_once() -> None:
    cache = GraphCache()
    s = _nacl()
    t0 = time.perf_counter()
    gs = cache.graphs([s, s.copy(), s])
    assert len(cache) == 1 and gs[0] is gs[1] is gs[2]
    assert time.perf_counter() - t0 < 5


def test_disordered_structures_are_refused() -> None:
    s = Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match="disordered"):
        structure_graph(s)


def _perov(n: int) -> list[Structure]:
    import csv

    path = SHARED_DATA / "structures" / "perov_5" / "val.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not here (the shared data sits beside the repository)")
    csv.field_size_limit(10**8)
    with path.open() as f:
        rows = [r for _, r in zip(range(n), csv.DictReader(f))]
    return [Structure.from_str(r["cif"], fmt="cif") for r in rows]


def test_graph_store_selects_like_batching_the_graphs() -> None:
    structures = _perov(6) + [_nacl()]
    graphs = GraphCache().graphs(structures)
    from surrogates.crystal_graph import GraphStore

    store = GraphStore(graphs)
    idx = torch.tensor([6, 2, 2, 0])
    got, want = store.select(idx), batch_graphs([graphs[i] for i in idx.tolist()])
    for name in ("atoms", "neighbors", "edges", "crystal"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert got.n_crystals == 4


def test_cgcnn_on_indices_learns_a_structure_property() -> None:
    """Trained through the loop every network surrogate uses, on candidate indices."""
    from surrogates.cgcnn import CGCNNOnIndices
    from surrogates.crystal_graph import GraphStore
    from surrogates.training import TrainConfig, predict, train_network

    structures = _perov(160)
    vol = torch.tensor([s.volume / len(s) for s in structures], dtype=torch.float32)
    y = ((vol - vol.mean()) / vol.std()).unsqueeze(-1)
    X = torch.arange(len(structures), dtype=torch.float32).unsqueeze(-1)
    net = CGCNNOnIndices(
        GraphStore(GraphCache().graphs(structures)), CGCNNConfig(n_conv=2, embed=32, hidden=32)
    )
    tr, te = slice(0, 120), slice(120, 160)
    train_network(
        net,
        X[tr],
        y[tr],
        TrainConfig(max_epochs=60, patience=60, batch_size=32, lr=3e-3),
        seed=0,
        device=torch.device("cpu"),
    )
    pred = predict(net, X[te], device=torch.device("cpu"))
    mae = float((pred.reshape(-1) - y[te].reshape(-1)).abs().mean())
    baseline = float((y[te] - y[tr].mean()).abs().mean())
    assert mae < 0.5 * baseline, (mae, baseline)
