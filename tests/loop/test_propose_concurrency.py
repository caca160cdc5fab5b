"""Concurrent proposes on one campaign never hand out a candidate twice.

On SQLite a batch is chosen without the write lock (a model fit must not stop ingests and
heartbeats); if the campaign changed meanwhile it is chosen again under the lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import loop.engine as engine
from db import crud, open_store
from loop.campaigns import create_campaign
from loop.engine import propose

ROOT = Path(__file__).resolve().parents[2]


def test_a_batch_chosen_while_the_campaign_changed_is_chosen_again(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(sqlite_url, artifact_dir=tmp_path / "art")
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    original = engine._initial_design
    calls: list[int] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # another client proposes while this batch is being chosen
            with store.session_scope() as other:
                propose(session=other, name="p3ht", n=3, artifact_dir=store.artifact_dir)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "_initial_design", racing)
    with store.session_scope() as session:
        res = propose(session=session, name="p3ht", n=3, artifact_dir=store.artifact_dir)
    assert len(calls) == 3  # this batch, the other client's, this batch again
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        props = crud.list_proposals(session=session, campaign_id=rec.id)
    assert res.batch == 2 and sorted({p.batch for p in props}) == [1, 2]
    assert len({p.candidate_idx for p in props}) == 6
    store.dispose()


@pytest.mark.parametrize("between", ["list_measurements", "list_proposals"])
def test_a_job_completed_while_proposing_is_not_proposed_again(
    store: Any, between: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool of two candidates, one batch of two out; one job completes just after propose has
    read the measurements or the proposals: no candidate is free, whatever the interleaving."""
    import itertools

    from db import crud as crud_module
    from loop.campaigns import create_campaign_from_spec, load_campaign_spec
    from loop.errors import BudgetError
    from loop.jobs import complete_job

    spec, cands = load_campaign_spec(ROOT / "examples" / "p3ht.toml")
    assert cands is not None
    with store.session_scope() as session:
        create_campaign_from_spec(
            session=session, spec=spec, candidates=list(itertools.islice(cands, 2))
        )
    with store.session_scope() as session:
        first = propose(session=session, name="p3ht", n=2, artifact_dir=store.artifact_dir)
    real = getattr(crud_module, between)
    done: list[int] = []

    def then_complete(**kwargs: Any) -> Any:
        out = real(**kwargs)
        if not done:
            done.append(1)
            with store.session_scope() as other:  # a worker finishes job 1 at this moment
                complete_job(
                    session=other,
                    name="p3ht",
                    proposal_id=first.proposals[0].id,
                    values={"conductivity": 1.0},
                )
        return out

    monkeypatch.setattr(crud_module, between, then_complete)
    with store.session_scope() as session, pytest.raises(BudgetError, match="measured, pending"):
        propose(session=session, name="p3ht", n=1, artifact_dir=store.artifact_dir)
    assert done
