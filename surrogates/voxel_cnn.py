"""A 3-D (or 2-D) convolutional network from a two-phase voxel image to effective properties.

After Yang et al. (2018, Acta Mater. 149, 1), who mapped 51^3 two-phase microstructures to their
effective stiffness: five blocks of convolution, ReLU and pooling, then two dense layers. Here the
convolutions wrap around (the microstructures are periodic), each block halves the grid while it
is larger than 1 (so the same five blocks fit 21^3 and 51^3 grids), and global average pooling
turns what is left into the feature vector, so the network accepts any grid size.

`VoxelCNNOnIndices` reads candidate indices into a fixed stack of images, as the BoTorch side of
the planner sees candidates that are not plain vectors (DESIGN.md: an index column).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from surrogates.nets import MaskedDropout

__all__ = ["VoxelCNNConfig", "VoxelCNN", "VoxelCNNOnIndices"]


@dataclass(frozen=True)
class VoxelCNNConfig:
    """Constructor arguments of a `VoxelCNN` (stored in checkpoints).

    Attributes:
        dim: 2 or 3 (image dimensions).
        channels: Filters of each convolution block.
        hidden: Width of the dense hidden layer.
        out_dim: Outputs.
        dropout: Dropout before the output layer (MC dropout).
    """

    dim: int = 3
    channels: tuple[int, ...] = (16, 32, 64, 64, 128)
    hidden: int = 128
    out_dim: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be positive, got {self.channels}")
        if self.hidden < 1 or self.out_dim < 1:
            raise ValueError("hidden and out_dim must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoxelCNNConfig:
        return cls(**{**d, "channels": tuple(d["channels"])})


class VoxelCNN(nn.Module):
    """Conv-BN-ReLU-pool blocks, global average pooling, a dense layer, dropout, the output."""

    def __init__(self, config: VoxelCNNConfig = VoxelCNNConfig()) -> None:
        super().__init__()
        self.config = config
        conv = nn.Conv3d if config.dim == 3 else nn.Conv2d
        norm = nn.BatchNorm3d if config.dim == 3 else nn.BatchNorm2d
        self.pool = nn.functional.avg_pool3d if config.dim == 3 else nn.functional.avg_pool2d
        blocks = []
        c_in = 1
        for c in config.channels:
            blocks.append(
                nn.Sequential(
                    conv(c_in, c, 3, padding=1, padding_mode="circular", bias=False),
                    norm(c),
                    nn.ReLU(),
                )
            )
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.dense = nn.Sequential(nn.Linear(c_in, config.hidden), nn.ReLU())
        self.dropout = MaskedDropout(config.dropout, config.hidden)
        self.head = nn.Linear(config.hidden, config.out_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """`n x *grid` images (phase-1 fraction per voxel) -> `n x hidden` features."""
        h = (images.float() * 2.0 - 1.0).unsqueeze(1)
        for block in self.blocks:
            h = block(h)
            if min(h.shape[2:]) > 1:
                h = self.pool(h, 2, ceil_mode=True)
        h = h.mean(dim=tuple(range(2, h.dim())))
        return self.dense(h)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images)))


class VoxelCNNOnIndices(nn.Module):
    """A `VoxelCNN` over a fixed stack of images: inputs are `... x 1` indices into it.

    Each distinct index in a call runs through the convolutions once; in eval mode a call that
    asks for many images computes the features of the whole stack once and reads them from
    that table until the network trains or loads new weights. The images are not part of the
    state dict.
    """

    def __init__(self, images: torch.Tensor, config: VoxelCNNConfig = VoxelCNNConfig()) -> None:
        super().__init__()
        if images.dim() != config.dim + 1:
            raise ValueError(
                f"expected a stack of {config.dim}-D images, got shape {tuple(images.shape)}"
            )
        self.images = images
        self.net = VoxelCNN(config)
        self._table: torch.Tensor | None = None

    def train(self, mode: bool = True) -> VoxelCNNOnIndices:
        self._table = None
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._table = None
        return super().load_state_dict(*args, **kwargs)

    @property
    def config(self) -> VoxelCNNConfig:
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
        self.images = self.images.to(probe.device)
        return out

    def _features(self, idx: torch.Tensor) -> torch.Tensor:
        parts = [
            self.net.features(self.images[idx[s : s + 256]]) for s in range(0, idx.numel(), 256)
        ]
        return torch.cat(parts) if parts else self.net.features(self.images[idx])

    def _feature_table(self) -> torch.Tensor:
        if self._table is None:
            with torch.no_grad():
                self._table = self._features(
                    torch.arange(len(self.images), device=self.images.device)
                )
        return self._table

    def body(self, X: torch.Tensor) -> torch.Tensor:
        """`... x 1` indices -> `... x hidden` features (before dropout and output)."""
        lead = X.shape[:-1]
        idx = X.reshape(-1).round().long().to(self.images.device)
        n = len(self.images)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise IndexError(
                f"candidate index out of range [0, {n}): {int(idx.min())}..{int(idx.max())}"
            )
        if not self.training and (self._table is not None or idx.numel() > max(256, n // 8)):
            return self._feature_table()[idx].reshape(*lead, -1)
        uniq, inverse = torch.unique(idx, return_inverse=True)
        return self._features(uniq)[inverse].reshape(*lead, -1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.net.dropout(self.body(X)))
