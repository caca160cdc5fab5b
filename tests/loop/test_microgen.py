"""Gaussian-random-field microstructures, image loading and labelled data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loop.errors import LoopError
from loop.microgen import (
    GRFParams,
    labelled_set,
    load_dataset,
    load_images,
    microstructure,
    save_dataset,
)


def _interfaces(img: np.ndarray, axis: int) -> float:
    """Fraction of neighbouring voxel pairs along `axis` (periodic) that differ in phase."""
    return float(np.mean(img != np.roll(img, 1, axis=axis)))


def test_volume_fraction_seed_and_shape() -> None:
    a = microstructure((20, 20, 20), GRFParams(0.37, (2.0, 2.0, 2.0), 0.0, 5))
    assert a.dtype == np.uint8 and set(np.unique(a)) == {0, 1}
    assert abs(a.mean() - 0.37) < 1 / a.size + 1e-12
    b = microstructure((20, 20, 20), GRFParams(0.37, (2.0, 2.0, 2.0), 0.0, 5))
    c = microstructure((20, 20, 20), GRFParams(0.37, (2.0, 2.0, 2.0), 0.0, 6))
    assert (a == b).all() and (a != c).any()


def test_correlation_lengths_set_feature_size_and_direction() -> None:
    fine = microstructure((64, 64), GRFParams(0.5, (1.0, 1.0), 0.0, 1))
    coarse = microstructure((64, 64), GRFParams(0.5, (4.0, 4.0), 0.0, 1))
    assert _interfaces(coarse, 0) < 0.5 * _interfaces(fine, 0)
    # long along axis 1: few interfaces along it, many across
    fibre = microstructure((64, 64), GRFParams(0.5, (1.0, 6.0), 0.0, 2))
    assert _interfaces(fibre, 1) < 0.4 * _interfaces(fibre, 0)
    # rotated by 90 degrees, the fibres run along axis 0
    turned = microstructure((64, 64), GRFParams(0.5, (1.0, 6.0), 90.0, 2))
    assert _interfaces(turned, 0) < 0.4 * _interfaces(turned, 1)


def test_bad_parameters_are_named() -> None:
    with pytest.raises(LoopError, match="volume_fraction"):
        microstructure((8, 8), GRFParams(1.2, (1.0, 1.0)))
    with pytest.raises(LoopError, match="one correlation length per axis"):
        microstructure((8, 8, 8), GRFParams(0.5, (1.0, 1.0)))
    with pytest.raises(LoopError, match="positive"):
        microstructure((8, 8), GRFParams(0.5, (1.0, -1.0)))
    with pytest.raises(LoopError, match="2-D or 3-D"):
        microstructure((8,), GRFParams(0.5, (1.0,)))


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_labelled_set_round_trip(tmp_path: Path, suffix: str) -> None:
    arrays, attrs = labelled_set(3, 8, dim=3, contrast=5.0, seed=1)
    assert arrays["images"].shape == (3, 8, 8, 8)
    assert arrays["tensors"].shape == (3, 6, 6)
    # every label lies between the phases' stiffness, and grows with the stiff fraction
    c33 = arrays["tensors"][:, 2, 2]
    assert (c33 > 1.3).all() and (c33 < 5 * 1.35).all()
    vf = arrays["params"][:, 0]
    np.testing.assert_allclose(vf, arrays["images"].reshape(3, -1).mean(1))
    path = tmp_path / f"set{suffix}"
    save_dataset(path, arrays, attrs)
    back, battrs = load_dataset(path)
    assert battrs == attrs
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)
    imgs = load_images(path)
    assert imgs.shape == (3, 8, 8, 8) and imgs.dtype == float
    one, _ = labelled_set(3, 8, dim=3, contrast=5.0, seed=1, columns=[2])
    np.testing.assert_allclose(one["tensors"][:, :, 0], arrays["tensors"][:, :, 2], atol=1e-5)


def test_load_images_names_the_bad_image(tmp_path: Path) -> None:
    stack = np.zeros((4, 6, 6))
    stack[2, 0, 0] = 3.0
    np.save(tmp_path / "bad.npy", stack)
    with pytest.raises(LoopError, match=r"bad\.npy: image 2 has voxels outside \[0, 1\]"):
        load_images(tmp_path / "bad.npy")
    np.savez(tmp_path / "x.npz", other=np.zeros((2, 4, 4)))
    with pytest.raises(LoopError, match="no array 'images'"):
        load_images(tmp_path / "x.npz")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(LoopError, match="stack of 2-D or 3-D images"):
        load_images(tmp_path / "flat.npy")
    with pytest.raises(LoopError, match="not found"):
        load_images(tmp_path / "missing.npy")


def test_a_user_made_hdf5_stack_loads_by_dataset_path(tmp_path: Path) -> None:
    """An instrument's own HDF5 file: booleans in a nested group, read by its dataset path."""
    import h5py

    rng = np.random.default_rng(0)
    stack = rng.random((5, 6, 7, 8)) > 0.6
    path = tmp_path / "scan.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("segmented/phase_mask", data=stack)
        f.create_dataset("raw", data=rng.random((5, 6, 7, 8)) * 255)
    imgs = load_images(path, key="segmented/phase_mask")
    assert imgs.shape == (5, 6, 7, 8) and imgs.dtype == float
    np.testing.assert_array_equal(imgs, stack.astype(float))
    with pytest.raises(LoopError, match="no dataset 'images'"):
        load_images(path)
    with pytest.raises(LoopError, match=r"scan\.hdf5: image 0 has voxels outside \[0, 1\]"):
        load_images(path, key="raw")
