"""The watch-folder bridge: an instrument that only reads and writes files runs the loop."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from db import Store, crud
from loop.adapters.folder import FolderBridge
from loop.autoloop import run_campaign
from loop.campaigns import create_campaign
from loop.simulators import make_simulator
from loop.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]


def _lab(store: Store, folder: Path, stop: threading.Event) -> None:
    """Reads proposal files, writes one CSV of results per proposal (tmp name, then rename);
    the first time also drops a file with a bad row and a copy of a good file."""
    with store.session_scope() as session:
        spec = parse_spec(crud.get_campaign(session=session, name="p3ht").spec)
    sim = make_simulator(spec)
    rng = np.random.default_rng(3)
    done: set[int] = set()
    first = True
    while not stop.is_set():
        for f in sorted((folder / "proposals").glob("p3ht-*.json")):
            pid = int(f.stem.split("-")[1])
            if pid in done:
                continue
            try:
                doc = json.loads(f.read_text())
            except FileNotFoundError:  # withdrawn by the planner between listing and reading
                continue
            done.add(pid)
            v = sim.measure(doc["params"], rng)["conductivity"]
            text = f"proposal_id,conductivity,instrument\n{pid},{v!r},xrd-1\n"
            part = folder / "results" / f"r{pid}.csv.part"
            part.write_text(text)
            if first:
                (folder / "results" / "bad.csv").write_text(
                    f"proposal_id,conductivity\n{pid},{v!r}\n{pid + 1000},lots\n"
                )
                (folder / "results" / "notes.txt").write_text("hello")
                (folder / "results" / "copy.csv").write_text(text)
                first = False
            os.replace(part, folder / "results" / f"r{pid}.csv")
        time.sleep(0.05)


def test_loop_through_a_watched_folder(store: Store, tmp_path: Path) -> None:
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    folder = tmp_path / "lab"
    bridge = FolderBridge(store, "p3ht", folder=folder)
    stop = threading.Event()
    lab = threading.Thread(target=_lab, args=(store, folder, stop), daemon=True)
    lab.start()
    try:
        summary = run_campaign(
            store, "p3ht", bridge, budget=8, batch=4, timeout=120, poll_seconds=0.3
        )
    finally:
        stop.set()
        lab.join()
    assert summary.finished == 8 and summary.measurements == 8, summary
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
        props = crud.list_proposals(session=session, campaign_id=rec.id)
    assert {p.status for p in props} == {"completed"}
    assert sorted(m.proposal_id for m in ms) == sorted(p.id for p in props)
    assert all(m.provenance["instrument"] == "xrd-1" for m in ms)
    done = sorted(f.name for f in (folder / "results" / "done").iterdir())
    assert "copy.csv" in done and len([n for n in done if n.startswith("r")]) == 8
    rejected = folder / "results" / "rejected"
    err = (rejected / "bad.csv.error.txt").read_text()
    assert "line 3" in err and "'conductivity'" in err and "nothing of this file was stored" in err
    assert "not a result file" in (rejected / "notes.txt.error.txt").read_text()
    # the outbox holds only open proposals: none are left
    assert list((folder / "proposals").glob("*.json")) == []


def test_a_poisoned_file_is_refused_and_the_next_one_stored(store: Store, tmp_path: Path) -> None:
    from loop.engine import propose

    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    with store.session_scope() as session:
        pid = propose(session=session, name="p3ht", n=1, artifact_dir=tmp_path).proposals[0].id
    bridge = FolderBridge(store, "p3ht", folder=tmp_path / "lab", max_bytes=20_000)
    inbox = tmp_path / "lab" / "results"
    big = "1" + "0" * 400
    (inbox / "a.jsonl").write_text(f'{{"proposal_id": {big}, "conductivity": 1}}\n')
    (inbox / "b.jsonl").write_text("[" * 5000 + "]" * 5000 + "\n")
    row = json.dumps({"proposal_id": pid, "conductivity": 2.5}) + "\n"
    (inbox / "c.jsonl").write_text(row)
    (inbox / "d.jsonl").write_text(row * 1000)  # over max_bytes: refused unread
    assert bridge.collect(0.1) == 1
    assert sorted(f.name for f in (inbox / "rejected").iterdir()) == [
        "a.jsonl",
        "a.jsonl.error.txt",
        "b.jsonl",
        "b.jsonl.error.txt",
        "d.jsonl",
        "d.jsonl.error.txt",
    ]
    assert "proposal_id" in (inbox / "rejected" / "a.jsonl.error.txt").read_text()
    refused = (inbox / "rejected" / "d.jsonl.error.txt").read_text()
    assert "over the limit of 20,000 bytes" in refused
    assert [f.name for f in (inbox / "done").iterdir()] == ["c.jsonl"]


def test_a_stopped_folder_loop_resumes_without_losing_or_repeating(
    store: Store, tmp_path: Path
) -> None:
    """The planner stops with a batch out (here: its time runs out, as after a crash); the
    instrument answers while it is down; the next run stores those results, proposes no
    batch twice and finishes the budget."""
    with store.session_scope() as session:
        create_campaign(session=session, path=ROOT / "examples" / "p3ht.toml")
    folder = tmp_path / "lab"
    first = run_campaign(
        store, "p3ht", FolderBridge(store, "p3ht", folder=folder), budget=8, batch=4, timeout=0.5
    )
    assert "timed out" in first.reason and first.finished == 0
    out = sorted((folder / "proposals").glob("p3ht-*.json"))
    assert len(out) == 4, "the open batch stays in the outbox"
    stop = threading.Event()
    lab = threading.Thread(target=_lab, args=(store, folder, stop), daemon=True)
    lab.start()
    try:
        deadline = time.monotonic() + 30
        while len(list((folder / "results").glob("r*.csv"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        summary = run_campaign(
            store,
            "p3ht",
            FolderBridge(store, "p3ht", folder=folder),
            budget=8,
            batch=4,
            timeout=120,
            poll_seconds=0.3,
        )
    finally:
        stop.set()
        lab.join()
    assert summary.finished == 8 and summary.measurements == 8, summary
    assert summary.batches_proposed == 1, "the first batch was not proposed again"
    with store.session_scope() as session:
        rec = crud.get_campaign(session=session, name="p3ht")
        ms = crud.list_measurements(session=session, campaign_id=rec.id)
        props = crud.list_proposals(session=session, campaign_id=rec.id)
    assert len(props) == 8 and {p.status for p in props} == {"completed"}
    assert sorted(m.proposal_id for m in ms) == sorted(p.id for p in props)
    assert [p.batch for p in props] == [1, 1, 1, 1, 2, 2, 2, 2]
