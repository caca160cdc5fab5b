"""`loop surrogate train-gan`: a tiny GAN trained, checked, stored and loaded back by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from db import open_store
from loop.cli import app
from loop.errors import NotFoundError
from loop.gan import load_gan, training_images


def test_training_images_follow_their_ranges() -> None:
    imgs = training_images(6, 32, volume_fraction=(0.3, 0.35), length=(2.0, 3.0), seed=1)
    assert imgs.shape == (6, 32, 32) and imgs.dtype.name == "uint8"
    vf = imgs.reshape(6, -1).mean(1)
    assert ((vf > 0.29) & (vf < 0.36)).all()


def test_train_gan_stores_a_reusable_generator(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    base = ["--db", str(db), "surrogate", "train-gan", "--name", "tiny", "--n", "32"]
    args = [*base, "--latent", "2", "--filters", "8,8,4,4", "--steps", "20"]
    plot = tmp_path / "q.png"
    res = CliRunner().invoke(app, [*args, "--plot", str(plot), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    q = doc["quality"]
    assert 0 <= q["volume_fraction"]["generated_mean"] <= 1 and q["s2_distance"] >= 0
    assert "s2_distance_real_halves" in q and plot.stat().st_size > 1000
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    store = open_store(f"sqlite:///{db}")
    with store.session_scope() as session:
        g = load_gan(session=session, name="tiny")
        assert g(torch.rand(3, 1, 2, 2)).shape == (3, 1, 64, 64)
        with pytest.raises(NotFoundError, match="no GAN named 'other'; stored: tiny"):
            load_gan(session=session, name="other")
    listed = CliRunner().invoke(app, ["--db", str(db), "surrogate", "list"])
    assert "tiny" in listed.output and "gan" in listed.output
    bad = CliRunner().invoke(app, [*base, "--filters", "8,x", "--name", "t2"])
    assert bad.exit_code == 2 and "--filters" in bad.output
    # a larger latent map decodes to a larger image, thresholded at the asked fraction
    big = tmp_path / "sizes.png"
    dec = ["--db", str(db), "surrogate", "decode-gan", "tiny", "--sizes", "2,4", "--n", "4"]
    res = CliRunner().invoke(app, [*dec, "--volume-fraction", "0.25", "--plot", str(big), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [(r["latent"], r["image"]) for r in rows] == [(2, 64), (4, 128)]
    assert all(r["volume_fraction"] == 0.25 and r["s2_distance"] >= 0 for r in rows)
    assert big.stat().st_size > 1000
