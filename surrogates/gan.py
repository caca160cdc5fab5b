"""A GAN for two-phase 2-D microstructures whose latent map is a design space (Yang et al. 2018).

The layout is the authors': a latent map of `1 x 4 x 4` values drawn uniformly from [0, 1]; a
generator of four transposed convolutions (kernel 4, stride 2, batch norm, ReLU; 128, 64, 32 and
16 filters) and a fifth to one channel with tanh, so 4 -> 128 pixels; a discriminator that
mirrors it with LeakyReLU 0.2. Being fully convolutional, the generator maps a larger latent map
(8 x 8, 16 x 16) to a larger image (256, 512 pixels): the paper's scalability claim.

Their style loss needs pretrained VGG16 weights, which cannot be obtained here. It is replaced by
a two-point-statistics loss: the mean periodic autocorrelation of the generated phase-1 field
(computed by FFT, differentiable) is pulled toward the training set's, together with its volume
fraction. Two-point statistics are exactly what the style loss was meant to carry for two-phase
microstructures (the Gram matrices of VGG features are a proxy for them), and they cost one FFT.
For stability the discriminator has spectral normalization on every layer (Miyato et al. 2018)
and the adversarial loss is the hinge loss; spectral normalization bounds the discriminator's
Lipschitz constant without the extra backward pass a gradient penalty needs, which matters on a
CPU. The generator's output in [-1, 1] is read as the phase-1 fraction `(x + 1) / 2`;
thresholding at 0.5 gives the binary microstructure.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from surrogates.microstats import two_point_correlation

__all__ = [
    "GANConfig",
    "Generator",
    "Discriminator",
    "GANReport",
    "train_gan",
    "two_point_correlation",
    "decode",
]


@dataclass(frozen=True)
class GANConfig:
    """Constructor arguments of a generator / discriminator pair (stored with the weights).

    Attributes:
        latent: Side of the square latent map (4 in the paper: 16 design variables).
        filters: Generator filters of the four hidden transposed convolutions.
        image: Side of the images trained on (`latent * 2 ** (len(filters) + 1)`).
    """

    latent: int = 4
    filters: tuple[int, ...] = (128, 64, 32, 16)

    def __post_init__(self) -> None:
        if self.latent < 1 or not self.filters or any(f < 1 for f in self.filters):
            raise ValueError(f"bad GAN config {self}")

    @property
    def image(self) -> int:
        return self.latent * 2 ** (len(self.filters) + 1)

    @property
    def dim(self) -> int:
        """Number of design variables (latent values)."""
        return self.latent * self.latent

    def to_dict(self) -> dict[str, Any]:
        return {"latent": self.latent, "filters": list(self.filters)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GANConfig:
        return cls(latent=int(d["latent"]), filters=tuple(int(f) for f in d["filters"]))


class Generator(nn.Module):
    """Latent maps `n x 1 x h x w` in [0, 1] -> images `n x 1 x 32h x 32w` in [-1, 1]."""

    def __init__(self, config: GANConfig = GANConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c in config.filters:
            layers += [
                nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        layers += [nn.ConvTranspose2d(c_in, 1, 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Images `n x 1 x H x W` -> one logit each; the mirror of the generator, spectrally
    normalized, with LeakyReLU 0.2. `features` gives the pooled last hidden layer (used as a
    pretrained start for structure-property models)."""

    def __init__(self, config: GANConfig = GANConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c in reversed(config.filters):
            layers += [spectral_norm(nn.Conv2d(c_in, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Conv2d(c_in, 1, 4, stride=2, padding=1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """`n x filters[0]` pooled features of the last hidden layer."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x)).mean(dim=(1, 2, 3))


def decode(
    generator: Generator,
    z: torch.Tensor,
    *,
    binary: bool = True,
    volume_fraction: float | None = None,
) -> torch.Tensor:
    """Latent vectors `n x latent^2` (or maps) in [0, 1] -> phase-1 images `n x H x W`.

    Binary images are the phase field thresholded at 0.5, or, given `volume_fraction`, at each
    image's own quantile: the `round(volume_fraction * H * W)` highest pixels are phase 1, so
    every image has that fraction exactly (to the pixel) and keeps the morphology of the field's
    level sets, the way the GRF training images are thresholded (`loop.microgen`).
    """
    if volume_fraction is not None and not 0.0 < volume_fraction < 1.0:
        raise ValueError(f"volume_fraction must lie in (0, 1), got {volume_fraction}")
    lat = generator.config.latent
    if z.dim() == 2:
        side = int(round(math.sqrt(z.shape[-1])))
        if side * side != z.shape[-1]:
            raise ValueError(f"{z.shape[-1]} latent values do not make a square map")
        lat = side
        z = z.reshape(-1, 1, lat, lat)
    x = generator(z.to(next(generator.parameters()).dtype))
    phase = (x[:, 0] + 1.0) / 2.0
    if not binary:
        return phase
    if volume_fraction is None:
        return (phase > 0.5).to(phase.dtype)
    flat = phase.reshape(phase.shape[0], -1)
    k = int(round(volume_fraction * flat.shape[1]))
    out = torch.zeros_like(flat)
    if k > 0:
        out.scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    return out.reshape(phase.shape)


@dataclass
class GANReport:
    """What a training run did."""

    steps: int
    epochs: float
    seconds: float
    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    stat_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_gan(
    images: torch.Tensor,
    config: GANConfig = GANConfig(),
    *,
    steps: int = 2000,
    time_budget: float | None = None,
    batch_size: int = 32,
    lr: float = 2e-4,
    stat_weight: float = 10.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log_every: int = 10,
) -> tuple[Generator, Discriminator, GANReport]:
    """Train a generator / discriminator pair on binary images `n x S x S` (S = config.image).

    Hinge adversarial loss with a spectrally normalized discriminator, plus `stat_weight` times
    the squared distance between the batch's mean two-point correlation (and volume fraction)
    and the training set's. Adam (0.5, 0.999) at `lr` for both, one discriminator step per
    generator step, until `steps` or `time_budget` seconds.

    Raises:
        ValueError: Images of the wrong shape.
    """
    if images.dim() != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square images n x S x S, got {tuple(images.shape)}")
    if images.shape[1] != config.image:
        raise ValueError(
            f"images are {images.shape[1]} pixels, the GAN makes {config.image} "
            f"(latent {config.latent} x 2^{len(config.filters) + 1})"
        )
    torch.manual_seed(seed)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    G, D = Generator(config).to(dev), Discriminator(config).to(dev)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    real_all = images.float().to(dev)
    with torch.no_grad():
        target_s2 = two_point_correlation(real_all).mean(0)
    n = real_all.shape[0]
    bs = min(batch_size, n)
    rep = GANReport(steps=0, epochs=0.0, seconds=0.0)
    t0 = time.perf_counter()
    step = 0
    while step < steps and (time_budget is None or time.perf_counter() - t0 < time_budget):
        idx = torch.randint(n, (bs,), generator=gen).to(dev)
        real = real_all[idx].unsqueeze(1) * 2.0 - 1.0
        z = torch.rand(bs, 1, config.latent, config.latent, generator=gen).to(dev)
        # discriminator: hinge loss
        fake = G(z)
        d_loss = torch.relu(1.0 - D(real)).mean() + torch.relu(1.0 + D(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator: hinge loss + two-point statistics
        g_adv = -D(fake).mean()
        s2 = two_point_correlation((fake[:, 0] + 1.0) / 2.0).mean(0)
        stat = ((s2 - target_s2) ** 2).mean() / (target_s2[0, 0] ** 2)
        g_loss = g_adv + stat_weight * stat
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        step += 1
        if step % log_every == 0 or step == 1:
            rep.d_loss.append(float(d_loss.detach()))
            rep.g_loss.append(float(g_adv.detach()))
            rep.stat_loss.append(float(stat.detach()))
    rep.steps = step
    rep.epochs = step * bs / n
    rep.seconds = time.perf_counter() - t0
    G.eval()
    D.eval()
    return G, D, rep
