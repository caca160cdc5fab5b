"""The engine with neural surrogates: fits stored with checkpoints, reused, warm-started."""

from __future__ import annotations

from pathlib import Path

import torch

from db import crud, open_store
from loop.campaigns import create_campaign
from loop.engine import propose
from loop.ingest import ingest_rows

SPEC = """
name = "nio"
budget = 40
batch_size = 2

[compositions]
elements = ["Ni", "Fe", "Co", "O"]
step = 0.1
max_components = 3

[[objectives]]
name = "e_form"
direction = "minimize"

[model]
surrogate = "{surrogate}"
acquisition = "qlognei"
[model.surrogate_options]
size = "tiny"
epochs = 20
{extra}
"""


def _campaign(  # type: ignore[no-untyped-def]
    tmp_path: Path, surrogate: str, extra: str, n: int, acquisition: str = "qlognei"
):
    spec = tmp_path / "nio.toml"
    text = SPEC.format(surrogate=surrogate, extra=extra)
    spec.write_text(text.replace('acquisition = "qlognei"', f'acquisition = "{acquisition}"'))
    store = open_store(f"sqlite:///{tmp_path / 'n.db'}", artifact_dir=tmp_path / "art")
    with store.session_scope() as s:
        rec = create_campaign(session=s, path=spec)
        cands = crud.list_candidates(session=s, campaign_id=rec.id)
    # a smooth made-up energy: oxygen-rich is lower, Co raises it
    rows = [
        (i + 2, {**c[2], "e_form": -2.0 * c[2]["O"] + 0.5 * c[2]["Co"] - 0.3 * c[2]["Fe"]})
        for i, c in enumerate(cands[::7][:n])
    ]
    with store.session_scope() as s:
        ingest_rows(session=s, name="nio", rows=rows, source="t")
    return store


def test_checkpoint_round_trips_through_the_database(tmp_path: Path) -> None:
    store = _campaign(tmp_path, "elemnet-ensemble", "members = 3", 12)
    with store.session_scope() as s:
        a = propose(session=s, name="nio", artifact_dir=store.artifact_dir, device="cpu")
    assert a.strategy == "elemnet-ensemble+qlognei"
    fit = a.model_fit
    assert fit is not None and fit.checkpoint_path and Path(fit.checkpoint_path).is_file()
    assert fit.metrics["n_heldout"] == 12 and len(fit.heldout) == 12  # out-of-fold, every row
    assert fit.metrics["e_form"]["n"] == 12
    state = torch.load(fit.checkpoint_path, weights_only=True)
    assert len(state["members"]) == 3
    # same data: the stored checkpoint is the model; its predictions are those of the first fit
    with store.session_scope() as s:
        b = propose(session=s, name="nio", artifact_dir=store.artifact_dir, device="cpu")
    assert b.fit_reused and b.model_fit is not None and b.model_fit.id == fit.id
    pa = a.proposals[0].predictions["e_form"]
    with store.session_scope() as s:
        again = crud.get_model_fit(session=s, fit_id=fit.id)
    assert again is not None and again.checkpoint_sha256 == fit.checkpoint_sha256
    assert pa["std"] > 0
    assert {p.candidate_idx for p in b.proposals}.isdisjoint({p.candidate_idx for p in a.proposals})


def test_next_round_warm_starts_from_the_last_fit(tmp_path: Path) -> None:
    store = _campaign(tmp_path, "elemnet-dropout", "samples = 8", 10)
    with store.session_scope() as s:
        a = propose(session=s, name="nio", artifact_dir=store.artifact_dir, device="cpu")
        cands = crud.list_candidates(
            session=s, campaign_id=crud.get_campaign(session=s, name="nio").id
        )
    assert a.model_fit is not None and a.model_fit.metrics["warm_start"] is False
    rows = [
        (2 + i, {**cands[p.candidate_idx][2], "e_form": -1.0, "proposal_id": p.id})
        for i, p in enumerate(a.proposals)
    ]
    with store.session_scope() as s:
        ingest_rows(session=s, name="nio", rows=rows, source="t")
        b = propose(session=s, name="nio", artifact_dir=store.artifact_dir, device="cpu")
    assert b.model_fit is not None and b.model_fit.id != a.model_fit.id
    assert b.model_fit.metrics["warm_start"] is True
    assert b.model_fit.metrics["n_train"] == 12


def test_explore_and_thompson_propose_distinct_pool_candidates(tmp_path: Path) -> None:
    for acq in ("explore", "thompson"):
        spec_dir = tmp_path / acq
        spec_dir.mkdir()
        store = _campaign(spec_dir, "elemnet-ensemble", "members = 3", 10, acquisition=acq)
        with store.session_scope() as s:
            a = propose(session=s, name="nio", n=5, artifact_dir=store.artifact_dir, device="cpu")
        assert a.strategy == f"elemnet-ensemble+{acq}"
        idx = [p.candidate_idx for p in a.proposals]
        keys = {tuple(sorted(p.params.items())) for p in a.proposals}
        assert len(set(idx)) == 5 and len(keys) == 5, (idx, [p.acq_value for p in a.proposals])
        with store.session_scope() as s:
            measured = {m.candidate_idx for m in crud.list_measurements(session=s, campaign_id=1)}
        assert measured.isdisjoint(idx)
