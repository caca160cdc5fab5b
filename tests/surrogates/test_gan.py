"""The microstructure GAN (shapes, a larger latent map, a few training steps) and the image
statistics against analytic cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loop.microgen import GRFParams, microstructure
from surrogates.gan import Discriminator, GANConfig, Generator, decode, train_gan
from surrogates.microstats import (
    curve_distance,
    lineal_path,
    radial_average,
    two_point_correlation,
)


def test_paper_layout_shapes_and_a_larger_latent_map() -> None:
    cfg = GANConfig()
    assert (cfg.latent, cfg.image, cfg.dim) == (4, 128, 16)
    g, d = Generator(cfg), Discriminator(cfg)
    assert g(torch.rand(2, 1, 4, 4)).shape == (2, 1, 128, 128)
    # fully convolutional: an 8 x 8 latent map makes a 256 x 256 image
    assert g(torch.rand(1, 1, 8, 8)).shape == (1, 1, 256, 256)
    assert d(torch.rand(3, 1, 128, 128)).shape == (3,)
    assert d.features(torch.rand(3, 1, 128, 128)).shape == (3, 128)
    out = decode(g.eval(), torch.rand(5, 16))
    assert out.shape == (5, 128, 128) and set(out.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="square map"):
        decode(g, torch.rand(2, 15))


def test_decode_at_a_fixed_volume_fraction_thresholds_each_field_at_its_quantile() -> None:
    g = Generator(GANConfig(latent=2, filters=(4, 4))).eval()
    z = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        field = decode(g, z, binary=False)
        img = decode(g, z, volume_fraction=0.3)
    assert img.shape == (6, 16, 16) and (img.sum(dim=(1, 2)) == 77).all()  # round(0.3 * 256)
    # phase 1 is the 77 highest pixels of each field: every one is at least every phase-0 pixel
    for f, m in zip(field, img, strict=True):
        assert f[m == 1].min() >= f[m == 0].max()
    with pytest.raises(ValueError, match="volume_fraction"):
        decode(g, z, volume_fraction=1.0)


def test_checkerboard_and_laminate_statistics() -> None:
    n = 8
    board = torch.tensor((np.indices((n, n)).sum(0) % 2).astype(float)).unsqueeze(0)
    s2 = two_point_correlation(board)[0]
    assert float(s2[0, 0]) == pytest.approx(0.5)
    assert float(s2[1, 0]) == pytest.approx(0.0, abs=1e-12)
    assert float(s2[1, 1]) == pytest.approx(0.5)
    lp = lineal_path(board, axis=0)[0]
    assert float(lp[0]) == pytest.approx(0.5) and float(lp[1:].abs().max()) == 0.0
    # stripes 3 pixels wide across axis 0, constant along axis 1; volume fraction 3/8
    lam = torch.zeros(1, n, n, dtype=torch.float64)
    lam[0, :3, :] = 1.0
    along = lineal_path(lam, axis=1)[0]
    torch.testing.assert_close(along, torch.full_like(along, 3 / 8))
    across = lineal_path(lam, axis=0)[0]
    expected = torch.tensor([max(0, 3 - r) / n for r in range(n // 2 + 1)], dtype=torch.float64)
    torch.testing.assert_close(across, expected)
    s2l = two_point_correlation(lam)[0]
    torch.testing.assert_close(s2l[0], torch.full((n,), 3 / 8, dtype=torch.float64))
    rad = radial_average(two_point_correlation(board))
    assert rad.shape == (1, n // 2 + 1) and float(rad[0, 0]) == pytest.approx(0.5)
    assert curve_distance(lp.unsqueeze(0), lp.unsqueeze(0)) == 0.0


def test_a_few_training_steps_lower_the_statistics_loss() -> None:
    cfg = GANConfig(latent=2, filters=(16, 8, 8, 4))  # 64-pixel images, small enough for a CPU
    imgs = torch.tensor(
        np.stack([microstructure((64, 64), GRFParams(0.4, (3.0, 3.0), 0.0, s)) for s in range(32)])
    )
    g, d, rep = train_gan(imgs, cfg, steps=60, batch_size=8, log_every=10, seed=1)
    assert rep.steps == 60 and len(rep.stat_loss) == 7
    assert rep.stat_loss[-1] < 0.5 * rep.stat_loss[0]
    assert rep.d_loss[-1] < rep.d_loss[0]
    with pytest.raises(ValueError, match="pixels"):
        train_gan(imgs[:, :32, :32], cfg, steps=1)
