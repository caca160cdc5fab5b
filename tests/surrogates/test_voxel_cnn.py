"""The voxel CNN: shapes on 2-D and 3-D grids of any size, periodic translation invariance, and
its ensemble / MC-dropout surrogates learning a real homogenization label."""

from __future__ import annotations

import pytest
import torch

from loop.microgen import labelled_set
from surrogates import load_builtin, make_surrogate
from surrogates.base import UnknownSurrogateError
from surrogates.voxel_cnn import VoxelCNN, VoxelCNNConfig, VoxelCNNOnIndices


@pytest.mark.parametrize(("dim", "size"), [(3, 21), (3, 8), (2, 32), (2, 128)])
def test_shapes_on_any_grid(dim: int, size: int) -> None:
    net = VoxelCNN(VoxelCNNConfig(dim=dim, channels=(4, 8, 8, 8, 8), hidden=16, out_dim=2))
    x = torch.randint(0, 2, (3,) + (size,) * dim)
    assert net(x).shape == (3, 2)
    assert net.features(x).shape == (3, 16)


def test_periodic_shift_leaves_the_output_unchanged() -> None:
    # circular convolutions and global pooling: a periodic microstructure shifted by a multiple
    # of the total pooling stride is the same material and gets the same prediction
    torch.manual_seed(0)
    net = VoxelCNN(VoxelCNNConfig(dim=3, channels=(4, 4), hidden=8)).eval()
    x = torch.randint(0, 2, (2, 8, 8, 8))
    shifted = torch.roll(x, shifts=(4, 0, 4), dims=(1, 2, 3))
    torch.testing.assert_close(net(x), net(shifted), rtol=1e-5, atol=1e-5)


def test_on_indices_reads_the_stack() -> None:
    imgs = torch.randint(0, 2, (5, 6, 6, 6))
    net = VoxelCNNOnIndices(imgs, VoxelCNNConfig(channels=(4,), hidden=8)).eval()
    out = net(torch.tensor([[[3.0], [1.0]]]))
    assert out.shape == (1, 2, 1)
    torch.testing.assert_close(out[0, 0], net.net(imgs[3:4])[0])
    with pytest.raises(IndexError, match="out of range"):
        net(torch.tensor([[5.0]]))
    with pytest.raises(ValueError, match="stack of 3-D images"):
        VoxelCNNOnIndices(torch.zeros(4, 6, 6), VoxelCNNConfig(dim=3))


@pytest.fixture(scope="module")
def labelled() -> tuple[torch.Tensor, torch.Tensor]:
    a, _ = labelled_set(80, 8, contrast=10.0, seed=4, columns=[2])
    return torch.as_tensor(a["images"]), torch.tensor(a["tensors"][:, 2, 0]).unsqueeze(-1)


@pytest.mark.parametrize("kind", ["cnn3d-ensemble", "cnn3d-mcdropout"])
def test_surrogates_learn_the_stiffness(kind: str, labelled: tuple) -> None:
    load_builtin()
    imgs, y = labelled
    opts = {"epochs": 60, "channels": [8, 16], "width": 32, "lr": 3e-3}
    opts.update({"members": 2} if "ensemble" in kind else {"samples": 8})
    sur = make_surrogate(kind, opts)
    sur.set_images(imgs)
    X = torch.arange(80, dtype=torch.double).unsqueeze(-1)
    fit = sur.fit(X[:64], y[:64], bounds=torch.tensor([[0.0], [79.0]]), seed=0, device="cpu")
    post = fit.model.posterior(X[64:])
    mean = post.mean.detach().squeeze(-1)
    err = float((mean - y[64:, 0]).abs().mean())
    baseline = float((y[:64].mean() - y[64:, 0]).abs().mean())
    assert err < 0.6 * baseline, (err, baseline)
    assert (post.variance > 0).all()


def test_bad_options_and_missing_images() -> None:
    load_builtin()
    with pytest.raises(UnknownSurrogateError, match="channels"):
        make_surrogate("cnn3d-ensemble", {"channels": [8, 0]})
    sur = make_surrogate("cnn3d-ensemble", {"members": 1, "epochs": 1})
    X = torch.arange(4, dtype=torch.double).unsqueeze(-1)
    with pytest.raises(UnknownSurrogateError, match="has no images"):
        sur.fit(X, X, bounds=torch.tensor([[0.0], [3.0]]), device="cpu")
    sur.set_images(torch.zeros(3, 4, 4, 4))
    with pytest.raises(UnknownSurrogateError, match="stack holds 3 images"):
        sur.fit(X, X, bounds=torch.tensor([[0.0], [3.0]]), device="cpu")
