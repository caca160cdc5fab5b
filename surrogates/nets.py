"""Plain PyTorch networks for the neural surrogates: an MLP with maskable dropout, and ElemNet.

ElemNet (Jha et al. 2018, Sci. Rep. 8, 17593) is a 17-layer fully connected network from the
86 element fractions to one property. The authors' code describes it as
`1024x4D-512x3D-256x3D-128x3D-64x2-32x1-1`: four ReLU layers of width 1024, three of 512, three
of 256, three of 128, two of 64, one of 32 and a linear output, with dropout after the last layer
of the 1024, 512, 256 and 128 blocks at keep probabilities 0.8, 0.9, 0.7 and 0.8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "MaskedDropout",
    "MLP",
    "MLPConfig",
    "ELEMNET_BLOCKS",
    "elemnet_config",
    "ElemNetSize",
    "count_parameters",
]

#: (width, layers, dropout after the block's last layer) of the published ElemNet.
ELEMNET_BLOCKS: tuple[tuple[int, int, float], ...] = (
    (1024, 4, 0.2),
    (512, 3, 0.1),
    (256, 3, 0.3),
    (128, 3, 0.2),
    (64, 2, 0.0),
    (32, 1, 0.0),
)

ElemNetSize = Literal["full", "small", "tiny"]
#: Width divisor of each size: `small` (1/4 width, 16x fewer weights) trains on a CPU in
#: minutes; `tiny` is for tests.
_ELEMNET_DIVISOR = {"full": 1, "small": 4, "tiny": 16}


class MaskedDropout(nn.Module):
    """Dropout that can be frozen into `T` fixed masks for MC-dropout posteriors.

    In training mode it is ordinary dropout. In eval mode it is the identity, unless `set_masks`
    gave it `T x width` masks: then an input of shape `batch x T x n x width` (one slice per
    mask) is multiplied by the masks, the same ones on every call until they are replaced.
    """

    def __init__(self, p: float, width: int) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p
        self.width = width
        self.masks: torch.Tensor | None = None

    def set_masks(self, masks: torch.Tensor | None) -> None:
        """Freeze `T x width` 0/1 masks (scaled by `1 / (1 - p)` here), or `None` to clear."""
        if masks is None:
            self.masks = None
            return
        self.masks = (masks / (1.0 - self.p)).unsqueeze(-2)  # `T x 1 x width`

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            return F.dropout(h, self.p, training=True)
        if self.masks is not None and self.p > 0:
            return h * self.masks.to(h)
        return h


@dataclass(frozen=True)
class MLPConfig:
    """Constructor arguments of an `MLP` (stored in checkpoints beside the weights).

    Attributes:
        in_dim: Input width `d`.
        widths: Width of each hidden layer.
        dropouts: Dropout rate after each hidden layer (0 for none), one per width.
        out_dim: Number of outputs `m`.
    """

    in_dim: int
    widths: tuple[int, ...]
    dropouts: tuple[float, ...]
    out_dim: int = 1

    def __post_init__(self) -> None:
        if self.in_dim < 1 or self.out_dim < 1:
            raise ValueError(f"in_dim and out_dim must be >= 1, got {self.in_dim}, {self.out_dim}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"hidden widths must be >= 1, got {list(self.widths)}")
        if len(self.dropouts) != len(self.widths):
            raise ValueError(
                f"{len(self.dropouts)} dropout rates for {len(self.widths)} hidden layers"
            )
        if any(not 0.0 <= p < 1.0 for p in self.dropouts):
            raise ValueError(f"dropout rates must be in [0, 1), got {list(self.dropouts)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["dropouts"] = list(self.dropouts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MLPConfig:
        return cls(
            in_dim=int(d["in_dim"]),
            widths=tuple(int(w) for w in d["widths"]),
            dropouts=tuple(float(p) for p in d["dropouts"]),
            out_dim=int(d.get("out_dim", 1)),
        )


class MLP(nn.Module):
    """ReLU hidden layers, optional dropout after any of them, and a linear output.

    Maps `... x d` to `... x m`.
    """

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        prev = config.in_dim
        for w, p in zip(config.widths, config.dropouts):
            layers += [nn.Linear(prev, w), nn.ReLU()]
            if p > 0:
                layers.append(MaskedDropout(p, w))
            prev = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, config.out_dim)

    @property
    def dropout_layers(self) -> list[MaskedDropout]:
        return [m for m in self.body if isinstance(m, MaskedDropout)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def load_layer_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load another MLP's state dict layer by layer, whatever its dropout layout.

        Dropout layers hold no weights but take places in `body`, so the keys of a net with
        dropout differ from one without; the linear layers are matched in order instead.

        Raises:
            ValueError: The state has a different number of hidden layers.
        """
        src = sorted({int(k.split(".")[1]) for k in state if k.startswith("body.")})
        dst = [i for i, m in enumerate(self.body) if isinstance(m, nn.Linear)]
        if len(src) != len(dst):
            raise ValueError(f"state has {len(src)} hidden layers, this network {len(dst)}")
        mapped = {
            f"body.{d}.{w}": state[f"body.{s}.{w}"]
            for s, d in zip(src, dst)
            for w in ("weight", "bias")
        }
        mapped.update({k: v for k, v in state.items() if k.startswith("head.")})
        self.load_state_dict(mapped)


def elemnet_config(
    size: ElemNetSize = "full",
    *,
    in_dim: int = 86,
    out_dim: int = 1,
    dropout_scale: float = 1.0,
) -> MLPConfig:
    """ElemNet's layout; `small` and `tiny` divide every width by 4 and 16.

    `dropout_scale` multiplies the published dropout rates (0 turns dropout off). The full
    network has 4,631,361 weights (86 inputs, one output).
    """
    if size not in _ELEMNET_DIVISOR:
        raise ValueError(f"unknown ElemNet size {size!r}; use one of {', '.join(_ELEMNET_DIVISOR)}")
    top = max(p for _, _, p in ELEMNET_BLOCKS)
    if not 0.0 <= dropout_scale < 1.0 / top:
        raise ValueError(
            f"dropout_scale must be in [0, {1.0 / top:.3g}) so every rate stays below 1, "
            f"got {dropout_scale}"
        )
    div = _ELEMNET_DIVISOR[size]
    widths: list[int] = []
    drops: list[float] = []
    for width, n, p in ELEMNET_BLOCKS:
        for i in range(n):
            widths.append(max(4, width // div))
            drops.append(p * dropout_scale if i == n - 1 else 0.0)
    return MLPConfig(in_dim=in_dim, widths=tuple(widths), dropouts=tuple(drops), out_dim=out_dim)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
