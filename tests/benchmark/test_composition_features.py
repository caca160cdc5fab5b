"""Magpie-lite descriptors: shapes, finiteness, values worked out by hand, filled gaps."""

from __future__ import annotations

import numpy as np
import pytest

from loop.benchmark.composition_features import (
    ELEMENT_PROPERTIES,
    NORMS,
    STATISTICS,
    composition_features,
    element_table,
    feature_names,
    features_for,
)
from surrogates.featurizers import ELEMNET_ELEMENTS, featurize_formulas


def _feats(formulas: list[str]) -> dict[str, np.ndarray]:
    F = features_for(featurize_formulas(formulas).numpy())
    return dict(zip(feature_names(element_table()), F.T))


def test_table_is_complete_and_says_what_it_filled() -> None:
    t = element_table()
    assert t.values.shape == (86, len(ELEMENT_PROPERTIES))
    assert np.isfinite(t.values).all()
    assert t.filled == {"atomic_radius": ["Kr", "Xe"]}
    radius = t.values[:, ELEMENT_PROPERTIES.index("atomic_radius")]
    kr = ELEMNET_ELEMENTS.index("Kr")
    others = np.delete(radius, [kr, ELEMNET_ELEMENTS.index("Xe")])
    assert radius[kr] == pytest.approx(others.mean())


def test_shapes_and_finite() -> None:
    X = featurize_formulas(["NaCl", "Fe2O3", "H", "Al2Na1Sr1", "U3O8"]).numpy()
    F = features_for(X)
    names = feature_names(element_table())
    assert F.shape == (5, len(names))
    assert len(names) == len(ELEMENT_PROPERTIES) * len(STATISTICS) + len(NORMS) + 1
    assert np.isfinite(F).all()
    assert features_for(np.zeros((0, 86))).shape == (0, len(names))
    with pytest.raises(ValueError, match="86"):
        composition_features(np.zeros((3, 85)), element_table())


def test_known_values() -> None:
    f = _feats(["NaCl", "Fe2O3", "GaAs", "Hf"])
    # NaCl: Z 11 and 17 at 1/2 each
    assert f["Z_mean"][0] == pytest.approx(14.0)
    assert f["Z_avg_dev"][0] == pytest.approx(3.0)
    assert (f["Z_min"][0], f["Z_max"][0], f["Z_range"][0]) == (11.0, 17.0, 6.0)
    assert f["n_elements"][0] == 2.0
    assert f["L2_norm"][0] == pytest.approx(np.sqrt(0.5))
    # Fe2O3: 0.4 * 26 + 0.6 * 8 = 15.2, the most abundant element is O
    assert f["Z_mean"][1] == pytest.approx(15.2, rel=1e-6)
    assert f["Z_mode"][1] == 8.0
    # valence by block, as in Magpie: Ga 4s2 4p1 3d10, As 4s2 4p3 3d10; Hf 6s2 5d2 4f14
    assert f["Nd_mean"][2] == pytest.approx(10.0)
    assert f["Np_mean"][2] == pytest.approx(2.0)
    assert (f["Ns_mean"][3], f["Np_mean"][3], f["Nd_mean"][3], f["Nf_mean"][3]) == (2, 0, 2, 14)
    assert f["Nvalence_mean"][3] == 18.0
    assert f["Z_avg_dev"][3] == 0.0 and f["L10_norm"][3] == pytest.approx(1.0)


def test_rows_are_independent_of_their_block() -> None:
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.full(86, 0.05), size=9000)  # more rows than one block
    F = features_for(X)
    assert np.allclose(F[8500:8510], features_for(X[8500:8510]))
