"""Table cells leave out CIFs and packed microstructure images; everything else stays."""

from __future__ import annotations

import numpy as np

from loop.display import is_packed_image, shown_params
from loop.microgen import pack_image


def test_shown_params_drops_cifs_and_packed_images_only() -> None:
    packed = pack_image(np.eye(64))
    assert is_packed_image(packed) and not is_packed_image("64x64") and not is_packed_image(3)
    params = {"z00": 0.5, "image": packed, "cif": "data_x", "atmosphere": "air", "n": 3}
    assert shown_params(params) == {"z00": 0.5, "atmosphere": "air", "n": 3}
