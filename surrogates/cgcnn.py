"""CGCNN (Xie and Grossman 2018, PRL 120, 145301): graph convolutions over a crystal graph.

Maps a `GraphBatch` of `B` crystals to `B x out_dim`:

1. a linear embedding of the 92 atom features to `embed` (64);
2. `n_conv` convolutions: for each atom `i` and neighbour `j`, `z = W [v_i, v_j, u_ij] + b`,
   batch norm, split into a filter and a core, `sigmoid(filter) * softplus(core)` summed over
   the neighbours, batch norm, and `v_i <- softplus(v_i + sum)`;
3. mean pooling over each crystal's atoms (by index, no loop over crystals);
4. softplus, `n_hidden` hidden layers of width `hidden` with softplus, optional dropout before
   the output, and a linear output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from surrogates.crystal_graph import ATOM_FEATURE_DIM, GraphBatch, GraphStore
from surrogates.nets import MaskedDropout

__all__ = ["CGCNNConfig", "CGCNN", "CGCNNOnIndices", "ConvLayer", "mean_pool"]


@dataclass(frozen=True)
class CGCNNConfig:
    """The paper's architecture by default: embedding 64, 4 convolutions, one hidden layer of 32."""

    atom_dim: int = ATOM_FEATURE_DIM
    edge_dim: int = 41
    embed: int = 64
    n_conv: int = 4
    hidden: int = 32
    n_hidden: int = 1
    out_dim: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if min(self.atom_dim, self.edge_dim, self.embed, self.hidden, self.out_dim) < 1:
            raise ValueError(f"every width must be at least 1: {self}")
        if self.n_conv < 1 or self.n_hidden < 0:
            raise ValueError(f"need at least one convolution and no negative depth: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CGCNNConfig:
        return cls(**d)


class ConvLayer(nn.Module):
    """One CGCNN convolution over `N` atoms with `M` neighbours each."""

    def __init__(self, atom_dim: int, edge_dim: int) -> None:
        super().__init__()
        self.atom_dim = atom_dim
        self.fc = nn.Linear(2 * atom_dim + edge_dim, 2 * atom_dim)
        self.bn_edges = nn.BatchNorm1d(2 * atom_dim)
        self.bn_sum = nn.BatchNorm1d(atom_dim)

    def forward(self, v: torch.Tensor, nbr: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """`N x A` atoms, `N x M` neighbour indices, `N x M x G` edges -> `N x A`."""
        n, m = nbr.shape
        a = self.atom_dim
        z = torch.cat([v.unsqueeze(1).expand(n, m, a), v[nbr], e], dim=-1)
        z = self.bn_edges(self.fc(z).reshape(n * m, 2 * a)).reshape(n, m, 2 * a)
        gate, core = z.chunk(2, dim=-1)
        s = (torch.sigmoid(gate) * F.softplus(core)).sum(dim=1)
        return F.softplus(v + self.bn_sum(s))


def mean_pool(v: torch.Tensor, crystal: torch.Tensor, n_crystals: int) -> torch.Tensor:
    """`N x A` atom vectors -> `B x A` means over each crystal's atoms."""
    total = torch.zeros(n_crystals, v.shape[-1], dtype=v.dtype, device=v.device)
    total.index_add_(0, crystal, v)
    count = torch.bincount(crystal, minlength=n_crystals).clamp_min(1).to(v.dtype)
    return total / count.unsqueeze(-1)


class CGCNN(nn.Module):
    """The network over a `GraphBatch` (see the module docstring)."""

    def __init__(self, config: CGCNNConfig = CGCNNConfig()) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Linear(config.atom_dim, config.embed)
        self.convs = nn.ModuleList(
            [ConvLayer(config.embed, config.edge_dim) for _ in range(config.n_conv)]
        )
        layers: list[nn.Module] = []
        prev = config.embed
        for _ in range(config.n_hidden):
            layers += [nn.Linear(prev, config.hidden), nn.Softplus()]
            prev = config.hidden
        self.body = nn.Sequential(*layers)
        self.width = prev
        self.dropout = MaskedDropout(config.dropout, prev)
        self.head = nn.Linear(prev, config.out_dim)

    def features(self, batch: GraphBatch) -> torch.Tensor:
        """`B x width` crystal representations (the input of the dropout and output layer)."""
        v = self.embedding(batch.atoms)
        for conv in self.convs:
            v = conv(v, batch.neighbors, batch.edges)
        pooled = F.softplus(mean_pool(v, batch.crystal, batch.n_crystals))
        return self.body(pooled)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return self.head(self.dropout(self.features(batch)))


class CGCNNOnIndices(nn.Module):
    """CGCNN over a fixed pool: inputs are `... x 1` candidate indices into a `GraphStore`.

    Each distinct index in a call is convolved once, whatever the leading shape (an acquisition
    function over q-batches, or `T` MC-dropout copies of the same points, repeats indices); the
    crystal features are then gathered back, passed through the dropout layer, which applies
    frozen MC-dropout masks to `batch x T x n x width` features, and the output layer.

    In eval mode, a call that asks for many crystals (more than an eighth of the pool, as pool
    scoring does) computes the features of the whole pool once and reads them from that table
    until the network is put back into training mode or loads new weights.

    The store is not part of the state dict (it is rebuilt from the pool); only the weights are.
    """

    def __init__(self, store: GraphStore, config: CGCNNConfig = CGCNNConfig()) -> None:
        super().__init__()
        self.store = store
        self.net = CGCNN(config)
        self._table: torch.Tensor | None = None

    def train(self, mode: bool = True) -> CGCNNOnIndices:
        self._table = None  # weights may change from here on
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._table = None
        return super().load_state_dict(*args, **kwargs)

    def _feature_table(self) -> torch.Tensor:
        """Every pool crystal's features under the current (eval-mode) weights, computed once:
        scoring a pool asks for most of it many times per proposal round."""
        if self._table is None:
            n = len(self.store)
            with torch.no_grad():
                parts = [
                    self.net.features(self.store.select(torch.arange(s, min(s + 4096, n))))
                    for s in range(0, n, 4096)
                ]
            self._table = torch.cat(parts)
        return self._table

    @property
    def config(self) -> CGCNNConfig:
        return self.net.config

    @property
    def head(self) -> nn.Linear:
        return self.net.head

    @property
    def dropout_layers(self) -> list[MaskedDropout]:
        return [self.net.dropout] if self.net.config.dropout > 0 else []

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        out = super()._apply(fn, recurse)
        probe = fn(torch.zeros(1))
        self.store.to(probe.device)
        return out

    def body(self, X: torch.Tensor) -> torch.Tensor:
        """`... x 1` indices -> `... x width` crystal features (before dropout and output)."""
        lead = X.shape[:-1]
        idx = X.reshape(-1).round().long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self.store)):
            raise IndexError(
                f"candidate index out of range [0, {len(self.store)}): "
                f"{int(idx.min())}..{int(idx.max())}"
            )
        if not self.training and (
            self._table is not None or idx.numel() > max(256, len(self.store) // 8)
        ):
            return self._feature_table()[idx.to(self.store.sizes.device)].reshape(*lead, -1)
        uniq, inverse = torch.unique(idx, return_inverse=True)
        feats = self.net.features(self.store.select(uniq))
        return feats[inverse].reshape(*lead, -1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """`... x 1` indices -> `... x out_dim`."""
        return self.net.head(self.net.dropout(self.body(X)))
