"""`loop benchmark gan-transfer`: a tiny GAN's discriminator as the start of a property CNN,
against the same CNN from scratch; outputs checked for consistency, not timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from db import open_store
from loop.benchmark.gan_transfer import TRANSFER_ARMS, _cnn
from loop.cli import app
from loop.gan import load_gan


def _invoke(db: Path, *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(app, ["--db", str(db), *args])
    assert res.exit_code == code, res.output
    return res.output


def test_gan_transfer_writes_consistent_results(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    tiny = ["--name", "tiny", "--n", "32", "--latent", "2", "--filters", "4,4", "--steps", "5"]
    _invoke(db, "surrogate", "train-gan", *tiny)
    with open_store(f"sqlite:///{db}").session_scope() as session:
        disc = load_gan(session=session, name="tiny", part="discriminator")
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        start = _cnn(disc, True, 0).body.features(x)
        fresh = _cnn(disc, False, 0).body.features(x)
        assert torch.allclose(start, disc.features(x))
        assert not torch.allclose(fresh, disc.features(x))
    out = tmp_path / "res"
    args = ["benchmark", "gan-transfer", "--gan", "tiny", "--labels", "8,12", "--test", "8"]
    text = _invoke(db, *args, "--seeds", "2", "--epochs", "2", "--out", str(out))
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["runs"]) == 4 and doc["image_size"] == 16
    for n in ("8", "12"):
        rs = [r for r in doc["runs"] if r["labels"] == int(n)]
        s = doc["summary"][n]
        for arm in TRANSFER_ARMS:
            assert all(r[arm] > 0 for r in rs)
            assert s[arm]["rmse_mean"] == pytest.approx(sum(r[arm] for r in rs) / 2)
        g = s["discriminator_over_scratch"]
        assert g["gains"] == pytest.approx([r["scratch"] / r["discriminator"] - 1 for r in rs])
    assert "discriminator vs scratch" in text and (out / "results.md").is_file()
    _invoke(db, "benchmark", "gan-transfer", "--gan", "nope", "--out", str(out), code=2)
