"""FFT-accelerated homogenization against closed forms, bounds and the shared FANS reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loop.errors import LoopError
from loop.homogenize import (
    Phase,
    coarsen,
    engineering_constants,
    hashin_shtrikman_conductivity,
    hashin_shtrikman_elastic,
    homogenize,
    isotropic_stiffness,
    voigt_reuss_hill,
)
from loop.microgen import GRFParams, microstructure

REFERENCE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "microstructure"
    / "random_3d_rve_v02.h5"
)
SOFT = Phase(1.0, 0.3, 1.0)
STIFF = Phase(20.0, 0.25, 20.0)


def _mu(phase: Phase) -> float:
    return phase.youngs_modulus / (2 * (1 + phase.poisson_ratio))


@pytest.mark.parametrize("dim", [2, 3])
def test_a_laminate_matches_its_closed_form(dim: int) -> None:
    # layers normal to axis 0: across them the harmonic mean, along them the arithmetic one;
    # linear elements represent the piecewise-linear exact field, so the match is exact
    img = np.zeros((8,) * dim)
    img[:3] = 1.0
    f = 3 / 8
    k = homogenize(img, (SOFT, STIFF), "thermal").tensor
    assert k[0, 0] == pytest.approx(1 / ((1 - f) / 1 + f / 20), rel=1e-10)
    for i in range(1, dim):
        assert k[i, i] == pytest.approx((1 - f) * 1 + f * 20, rel=1e-10)
    c = homogenize(img, (SOFT, STIFF)).tensor
    m = [isotropic_stiffness(p, dim)[0, 0] for p in (SOFT, STIFF)]
    assert c[0, 0] == pytest.approx(1 / ((1 - f) / m[0] + f / m[1]), rel=1e-10)
    shear = dim  # Mandel index of the 12 component
    assert c[shear, shear] == pytest.approx(2 / ((1 - f) / _mu(SOFT) + f / _mu(STIFF)), rel=1e-10)


@pytest.mark.parametrize("dim", [2, 3])
def test_a_laminate_of_equal_poisson_ratios_is_voigt_along_its_layers(dim: int) -> None:
    """With one Poisson ratio, a stress along the layers strains both phases alike, so the
    Young's modulus along them is the volume average (the Voigt bound, reached), and the shear
    within the layer planes is the average shear modulus."""
    soft, stiff = Phase(1.0, 0.3, 1.0), Phase(20.0, 0.3, 20.0)
    img = np.zeros((8,) * dim)
    img[:3] = 1.0
    f = 3 / 8
    c = homogenize(img, (soft, stiff)).tensor
    own = [1.0 / np.linalg.inv(isotropic_stiffness(p, dim))[1, 1] for p in (soft, stiff)]
    e = engineering_constants(c)
    for axis in "yz"[: dim - 1]:
        assert e[f"E_{axis}"] == pytest.approx((1 - f) * own[0] + f * own[1], rel=1e-9)
    # across the layers it is far below: the stiff phase carries no load alone
    assert e["E_x"] < 0.5 * e["E_y"]
    if dim == 3:
        # Mandel order 11 22 33 12 23 13: index 4 is the shear in the plane of the layers,
        # 3 and 5 the shears across them (harmonic mean)
        assert c[4, 4] == pytest.approx(2 * ((1 - f) * _mu(soft) + f * _mu(stiff)), rel=1e-9)
        across = 2 / ((1 - f) / _mu(soft) + f / _mu(stiff))
        assert c[3, 3] == pytest.approx(across, rel=1e-9) and c[5, 5] == pytest.approx(across)


def test_a_homogeneous_image_returns_the_phase_itself() -> None:
    for fill, phase in ((0.0, SOFT), (1.0, STIFF)):
        res = homogenize(np.full((6, 6, 6), fill), (SOFT, STIFF))
        np.testing.assert_allclose(res.tensor, isotropic_stiffness(phase, 3), atol=1e-10)
        assert res.iterations == 0


def test_random_microstructures_stay_inside_the_bounds() -> None:
    for seed, vf in ((1, 0.25), (2, 0.5)):
        img = microstructure((14, 14, 14), GRFParams(vf, (2.0, 1.5, 2.5), 30.0, seed))
        phases = (Phase(1.0, 0.3, 1.0), Phase(10.0, 0.3, 10.0))
        c = homogenize(img, phases).tensor
        np.testing.assert_allclose(c, c.T, atol=1e-8)
        assert np.linalg.eigvalsh(c).min() > 0
        f = float(img.mean())
        vrh = voigt_reuss_hill(c)
        hs = hashin_shtrikman_elastic(phases, f)
        assert hs["bulk_lower"] < vrh["bulk"] < hs["bulk_upper"]
        assert hs["shear_lower"] < vrh["shear"] < hs["shear_upper"]
        # the displacement solution is stiffer than the truth, never stiffer than Voigt
        voigt = (1 - f) * isotropic_stiffness(phases[0], 3) + f * isotropic_stiffness(phases[1], 3)
        assert np.linalg.eigvalsh(voigt - c).min() > -1e-9
        k = homogenize(img, phases, "thermal").tensor
        lo, hi = hashin_shtrikman_conductivity(phases, f, 3)
        assert lo < np.trace(k) / 3 < hi


def test_a_2d_image_and_selected_columns() -> None:
    img = microstructure((24, 24), GRFParams(0.4, (2.0, 3.0), 45.0, 3))
    phases = (Phase(1.0, 0.3, 1.0), Phase(5.0, 0.3, 5.0))
    full = homogenize(img, phases)
    assert full.tensor.shape == (3, 3)
    part = homogenize(img, phases, columns=[1])
    np.testing.assert_allclose(part.tensor[:, 0], full.tensor[:, 1], rtol=1e-6, atol=1e-8)
    k = homogenize(img, phases, "thermal").tensor
    lo, hi = hashin_shtrikman_conductivity(phases, float(img.mean()), 2)
    assert lo < np.trace(k) / 2 < hi
    e = engineering_constants(full.tensor)
    assert set(e) == {"E_x", "E_y"} and all(1.0 < v < 5.0 for v in e.values())


def test_bad_input_is_named() -> None:
    ok = (SOFT, STIFF)
    with pytest.raises(LoopError, match="2-D or 3-D"):
        homogenize(np.zeros(5), ok)
    with pytest.raises(LoopError, match=r"in \[0, 1\]"):
        homogenize(np.full((4, 4), 2.0), ok)
    with pytest.raises(LoopError, match="Poisson"):
        homogenize(np.zeros((4, 4)), (Phase(1.0, 0.5, 1.0), STIFF))
    with pytest.raises(LoopError, match="physics"):
        homogenize(np.zeros((4, 4)), ok, "magnetic")  # type: ignore[arg-type]
    with pytest.raises(LoopError, match="did not converge"):
        homogenize(microstructure((8, 8), GRFParams(0.5, (1.0, 1.0))), ok, tol=1e-12, max_iter=2)
    with pytest.raises(LoopError, match="coarsen"):
        coarsen(np.zeros((10, 10)), 3)


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"shared reference set not at {REFERENCE}")
@pytest.mark.parametrize("index", [0, 7])
def test_the_shared_fans_reference_is_reproduced(index: int) -> None:
    """The reference: B-bar hexahedra on the 256^3 image averaged over 16^3 blocks, saved from
    MATLAB (axes reversed), Mandel ("normalized Voigt") 11 22 33 12 23 13."""
    import h5py

    with h5py.File(REFERENCE, "r") as f:
        img = f[f"ms_random/dset{index}"][()]
        sol = f[f"ms_random/dset{index}_sol"]
        ref = sol["stiffness_0293.10"][()]
        ref_k = sol["conductivity_0293.10"][()]
        attrs = sol["conductivity_0293.10"].attrs
        e, nu, k = attrs["elastic_modulus"], attrs["poisson_ratio"], attrs["conductivity"]
    phases = (Phase(e[0], nu[0], k[0]), Phase(e[1], nu[1], k[1]))
    grid = np.transpose(coarsen(img, 16), (2, 1, 0))
    c = homogenize(grid, phases).tensor
    np.testing.assert_allclose(np.diag(c), np.diag(ref), rtol=1e-4)
    np.testing.assert_allclose(c, ref, atol=1e-4 * np.abs(ref).max())
    kk = homogenize(grid, phases, "thermal").tensor
    np.testing.assert_allclose(kk, ref_k, atol=1e-5)
    # without the axis reversal the off-axis diagonal entries swap and miss
    c_wrong = homogenize(coarsen(img, 16), phases).tensor
    assert np.abs(np.diag(c_wrong) / np.diag(ref) - 1).max() > 1e-3
