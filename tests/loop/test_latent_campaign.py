"""`[latent]` campaigns: the latent box of a stored GAN as the design space, each proposal
carrying its decoded microstructure, the 2-D homogenization simulator answering from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from db import open_store
from loop.cli import app
from loop.errors import LoopError, SpecError
from loop.gan import load_gan
from loop.microgen import pack_image, unpack_image
from loop.spec import parse_spec
from surrogates.gan import decode

SPEC = """\
name = "latent_k"
budget = 16
batch_size = 4
initial_design = 4

[latent]
gan = "{gan}"
size = {size}

[[objectives]]
name = "k_xx"
direction = "maximize"

[[constraints]]
name = "volume_fraction"
upper = 0.6

[model]
surrogate = "gp"

[simulator]
name = "homogenization"
options = {{ phases = [{{ conductivity = 1.0 }}, {{ conductivity = 10.0 }}] }}
"""


def _invoke(db: Path, *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(app, ["--db", str(db), *args])
    assert res.exit_code == code, res.output
    return res.output


@pytest.fixture(scope="module")
def gan_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("gan") / "l.db"
    args = ["--name", "tiny", "--n", "32", "--latent", "2", "--filters", "8,8,4,4", "--steps", "20"]
    _invoke(db, "surrogate", "train-gan", *args)
    return db


def test_pack_image_round_trip() -> None:
    img = (np.random.default_rng(0).random((5, 7)) > 0.5).astype(np.uint8)
    text = pack_image(img)
    assert text.startswith("5x7:")
    np.testing.assert_array_equal(unpack_image(text), img)
    with pytest.raises(LoopError, match="not a packed microstructure image"):
        unpack_image("5x7:???")


def test_spec_derives_the_latent_parameters() -> None:
    spec = parse_spec(
        {"name": "l", "budget": 4, "latent": {"gan": "g"}, "objectives": [{"name": "k"}]}
    )
    assert [p.name for p in spec.parameters][:2] == ["z00", "z01"] and len(spec.parameters) == 16
    assert all((p.low, p.high) == (0.0, 1.0) for p in spec.parameters)
    with pytest.raises(SpecError, match="cannot sit beside"):
        parse_spec(
            {
                "name": "l",
                "budget": 4,
                "latent": {"gan": "g"},
                "objectives": [{"name": "k"}],
                "parameters": [{"type": "float", "name": "x", "low": 0, "high": 1}],
            }
        )


def test_a_latent_campaign_proposes_and_ingests_end_to_end(gan_db: Path, tmp_path: Path) -> None:
    db = gan_db
    spec = tmp_path / "lat.toml"
    spec.write_text(SPEC.format(gan="tiny", size=2))
    _invoke(db, "campaign", "create", str(spec))
    out = _invoke(db, "run", "latent_k", "--via", "worker", "--budget", "8")
    assert "gp+qucb" in out
    props = json.loads(_invoke(db, "proposal", "list", "latent_k", "--json"))
    props = props if isinstance(props, list) else props["proposals"]
    assert len(props) == 8
    store = open_store(f"sqlite:///{db}")
    with store.session_scope() as session:
        gen = load_gan(session=session, name="tiny")
    for p in props:
        z = torch.tensor([[p["params"][f"z0{i}"] for i in range(4)]], dtype=torch.float32)
        with torch.no_grad():
            expected = decode(gen, z)[0].numpy().astype(np.uint8)
        np.testing.assert_array_equal(unpack_image(p["params"]["image"]), expected)
    rows = json.loads(_invoke(db, "export", "latent_k", "--json"))
    rows = rows if isinstance(rows, list) else rows["measurements"]
    assert len(rows) == 8
    by_id = {p["id"]: p for p in props}
    for r in rows:
        img = unpack_image(by_id[r["proposal_id"]]["params"]["image"])
        assert r["volume_fraction"] == pytest.approx(float(img.mean()))
        assert 1.0 <= r["k_xx"] <= 10.0
    report = json.loads(_invoke(db, "report", "latent_k", "--json"))
    assert report["sections"]["microstructures"]["source"] == "decoded by the GAN"


def test_latent_campaign_refusals(gan_db: Path, tmp_path: Path) -> None:
    db = gan_db  # the refused campaigns are never created
    spec = tmp_path / "a.toml"
    spec.write_text(SPEC.format(gan="nope", size=2).replace("latent_k", "refused"))
    out = _invoke(db, "campaign", "create", str(spec), code=2)
    assert "no GAN named 'nope'; stored: tiny" in out
    spec.write_text(SPEC.format(gan="tiny", size=4).replace("latent_k", "refused"))
    out = _invoke(db, "campaign", "create", str(spec), code=2)
    assert "size = 4, but GAN 'tiny' has a 2 x 2 latent map" in out


NETS = {
    "ensemble": "{ members = 2, hidden = [16, 16], epochs = 40 }",
    "mc-dropout": "{ samples = 8, hidden = [16, 16], epochs = 40 }",
}


@pytest.mark.parametrize("family", sorted(NETS))
def test_latent_campaign_with_network_surrogates(gan_db: Path, tmp_path: Path, family: str) -> None:
    """Ensembles and MC dropout over the latent box: a model-based batch is proposed, and the
    acquisition's gradient through the network agrees with finite differences."""
    from loop.engine import _acquisition, _training_data, make_campaign_surrogate
    from loop.space import DesignSpace

    name = f"latent_{family.replace('-', '_')}"
    # at a fixed volume fraction, so the objective varies with the morphology alone
    text = SPEC.format(gan="tiny", size=2).replace("latent_k", name)
    text = text.replace("size = 2\n", "size = 2\nvolume_fraction = 0.4\n")
    text = text.replace('[[constraints]]\nname = "volume_fraction"\nupper = 0.6\n', "")
    text = text.replace(
        'surrogate = "gp"', f'surrogate = "{family}"\nsurrogate_options = {NETS[family]}'
    )
    spec_path = tmp_path / "net.toml"
    spec_path.write_text(text)
    _invoke(gan_db, "campaign", "create", str(spec_path))
    _invoke(gan_db, "run", name, "--via", "worker", "--budget", "8")
    props = json.loads(_invoke(gan_db, "proposal", "list", name, "--json"))
    props = props if isinstance(props, list) else props["proposals"]
    model_based = [p for p in props if p["strategy"] == f"{family}+qucb"]
    assert len(props) == 8 and len(model_based) == 4
    assert all(0.0 <= p["params"][f"z0{i}"] <= 1.0 for p in model_based for i in range(4))
    # round(0.4 * 64 * 64) phase-1 pixels in every decoded image
    assert all(unpack_image(p["params"]["image"]).sum() == 1638 for p in props)
    store = open_store(f"sqlite:///{gan_db}")
    with store.session_scope() as session:
        from db import crud

        rec = crud.get_campaign(session=session, name=name)
        spec = parse_spec(rec.spec)
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
    space = DesignSpace(spec)
    X, Y, _ = _training_data(spec, space, ms)
    fit = make_campaign_surrogate(spec).fit(
        X, Y, bounds=space.bounds(), seed=0, input_names=space.columns
    )
    acqf = _acquisition(spec, fit.model, X, Y, None, 0, name)
    x = torch.full((1, 1, 4), 0.4, dtype=torch.double, requires_grad=True)
    acqf(x).sum().backward()
    grad = x.grad[0, 0]
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    # ReLU networks are piecewise linear, so finite differences agree only roughly across
    # kinks; the steepest component must match in sign and scale, and a step along the gradient
    # must raise the acquisition
    k = int(grad.abs().argmax())
    h = 1e-3
    with torch.no_grad():
        e = torch.zeros_like(x)
        e[0, 0, k] = h
        fd = float((acqf(x + e) - acqf(x - e)).sum()) / (2 * h)
        assert fd == pytest.approx(float(grad[k]), rel=0.3)
        step = 1e-2 * grad / grad.norm()
        assert float(acqf(x + step).sum()) > float(acqf(x).sum())
