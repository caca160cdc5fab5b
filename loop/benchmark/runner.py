"""Replay data sets as oracles and run planners on them, seed by seed.

Every model-based strategy goes through `loop.engine.choose_from_pool` and the surrogate registry,
the code `loop propose` runs; only the database round trip is left out. Peers (BayBE, Ax) run in
their own Python (`peer_driver.py`), possibly another virtual environment, and return the order in
which they measured the pool.

The protocol (Liang et al. 2021): the pool is the data set's unique inputs (replicates combined);
each seed starts from the same random initial points for every strategy; a seed stops once 80% of
the top-5% targets are measured or half the pool is spent.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from loop.benchmark.dataset import Dataset, load_dataset
from loop.errors import LoopError
from loop.spec import ModelSpec

__all__ = [
    "Protocol",
    "RunRecord",
    "Strategy",
    "STRATEGIES",
    "PEERS",
    "resolve_strategies",
    "run_benchmark",
    "run_seed",
    "initial_points",
]

FORMAT = "loop-benchmark/1"
PEERS = ("baybe", "ax")


@dataclass(frozen=True)
class Strategy:
    """A planner configuration: `random`, a model spec run by the engine, or a peer."""

    name: str
    kind: str  # "random" | "model" | "peer"
    model: dict[str, Any] | None = None
    peer: str | None = None
    batch_size: int = 1

    @property
    def label(self) -> str:
        return self.name if self.batch_size == 1 else f"{self.name} q={self.batch_size}"


def _model(surrogate: str, acquisition: str, **acq: Any) -> dict[str, Any]:
    return ModelSpec(
        surrogate=surrogate, acquisition=acquisition, acquisition_options=acq
    ).model_dump()


#: Strategies by name. `default` is what a campaign gets when its spec has no `[model]` table.
STRATEGIES: dict[str, Strategy] = {
    "random": Strategy("random", "random"),
    "default": Strategy("default", "model", ModelSpec().model_dump()),
    "gp-qlognei": Strategy("gp-qlognei", "model", _model("gp", "qlognei")),
    "gp-qlogei": Strategy("gp-qlogei", "model", _model("gp", "qlogei")),
    "gp-qucb": Strategy("gp-qucb", "model", _model("gp", "qucb")),
    "gp-qucb-b2": Strategy("gp-qucb-b2", "model", _model("gp", "qucb", beta=2.0)),
    "ensemble-qucb": Strategy("ensemble-qucb", "model", _model("ensemble", "qucb")),
    "dropout-qucb": Strategy("dropout-qucb", "model", _model("mc-dropout", "qucb")),
    "baybe": Strategy("baybe", "peer", peer="baybe"),
    "ax": Strategy("ax", "peer", peer="ax"),
}


def resolve_strategies(names: list[str], batch_sizes: list[int]) -> list[Strategy]:
    """Strategies by name, one per batch size (random ignores the batch size).

    Raises:
        LoopError: A name is not known.
    """
    out: list[Strategy] = []
    for name in names:
        if name not in STRATEGIES:
            raise LoopError(
                f"unknown benchmark strategy '{name}'",
                f"choose from: {', '.join(STRATEGIES)}",
            )
        base = STRATEGIES[name]
        sizes = [1] if base.kind == "random" else batch_sizes
        for q in sizes:
            s = Strategy(base.name, base.kind, base.model, base.peer, q)
            same = [
                o
                for o in out
                if (o.kind, o.model, o.peer, o.batch_size) == (s.kind, s.model, s.peer, q)
            ]
            if not same:  # `default` and `gp-qlognei` are one configuration today: run it once
                out.append(s)
    return out


@dataclass(frozen=True)
class Protocol:
    """How each seed is run and scored."""

    seeds: int = 20
    n_initial: int = 2
    target_fraction: float = 0.05
    hit_fraction: float = 0.01
    stop_found: float = 0.8
    max_fraction: float = 0.5
    seed0: int = 0

    def check(self) -> None:
        if self.seeds < 1:
            raise LoopError(f"--seeds must be at least 1, got {self.seeds}", "use --seeds 20")
        if self.n_initial < 1:
            raise LoopError(f"--initial must be at least 1, got {self.n_initial}", "use 2")
        for name, v in (
            ("target fraction", self.target_fraction),
            ("stop fraction", self.stop_found),
            ("max pool fraction", self.max_fraction),
        ):
            if not 0 < v <= 1:
                raise LoopError(f"the {name} must be in (0, 1], got {v}", "use e.g. 0.05")

    def max_experiments(self, n_pool: int) -> int:
        return max(self.n_initial + 1, math.floor(self.max_fraction * n_pool))


@dataclass
class RunRecord:
    """One seed of one strategy on one data set."""

    dataset: str
    strategy: str
    batch_size: int
    seed: int
    order: list[int]
    seconds: list[float] = field(default_factory=list)
    proposals: int = 0
    wall_seconds: float = 0.0
    stopped: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    @property
    def label(self) -> str:
        return self.strategy if self.batch_size == 1 else f"{self.strategy} q={self.batch_size}"


def initial_points(dataset: Dataset, seed: int, n: int) -> list[int]:
    """The random initial experiments of one seed, shared by every strategy and peer."""
    rng = np.random.default_rng([seed, zlib.crc32(dataset.name.encode())])
    return [int(i) for i in rng.choice(dataset.n, size=min(n, dataset.n), replace=False)]


def _stop(order: list[int], targets: set[int], need: int, max_exp: int) -> str:
    if sum(1 for i in order if i in targets) >= need:
        return "found"
    if len(order) >= max_exp:
        return "max_experiments"
    return ""


def run_seed(
    dataset: Dataset,
    strategy: Strategy,
    seed: int,
    protocol: Protocol,
    *,
    peer_python: str | None = None,
) -> RunRecord:
    """Run one seed; returns the order in which the pool was measured."""
    t0 = time.perf_counter()
    targets = [int(i) for i in dataset.top(protocol.target_fraction)]
    tset = set(targets)
    need = max(1, math.ceil(protocol.stop_found * len(targets) - 1e-9))
    max_exp = protocol.max_experiments(dataset.n)
    order = initial_points(dataset, seed, protocol.n_initial)
    rec = RunRecord(dataset.name, strategy.name, strategy.batch_size, seed, order)
    if strategy.kind == "peer":
        rec = _run_peer(dataset, strategy, seed, order, targets, need, max_exp, peer_python)
    elif strategy.kind == "random":
        rng = np.random.default_rng([seed, 7919])
        initial = set(order)
        rest = iter(i for i in rng.permutation(dataset.n).tolist() if i not in initial)
        while not (why := _stop(order, tset, need, max_exp)):
            order.append(int(next(rest)))
        rec.stopped = why
        rec.proposals = len(order) - protocol.n_initial
    else:
        _run_model(dataset, strategy, seed, rec, tset, need, max_exp)
    rec.wall_seconds = round(time.perf_counter() - t0, 3)
    return rec


def _run_model(
    dataset: Dataset,
    strategy: Strategy,
    seed: int,
    rec: RunRecord,
    tset: set[int],
    need: int,
    max_exp: int,
) -> None:
    import torch

    from loop.engine import choose_from_pool, make_campaign_surrogate
    from loop.space import DesignSpace

    assert strategy.model is not None
    spec = dataset.campaign_spec(
        ModelSpec.model_validate(strategy.model), budget=max_exp, batch_size=strategy.batch_size
    )
    space = DesignSpace(spec, dataset.candidates)
    X_all = space.encode(dataset.candidates)
    bounds = space.bounds()
    sign = 1.0 if dataset.direction == "maximize" else -1.0
    Y_all = torch.tensor(np.column_stack([sign * dataset.y, dataset.outcomes]), dtype=torch.double)
    surrogate = make_campaign_surrogate(spec)
    order = rec.order
    rnd = 0
    warm = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPyTorch jitter notes, one per fit, say nothing here
        while not (why := _stop(order, tset, need, max_exp)):
            t = time.perf_counter()
            idx = torch.tensor(order)
            X, Y = X_all[idx], Y_all[idx]
            # as `loop propose` does: each round's networks start from the last round's; the
            # networks of campaign-sized data train faster on a CPU than on a GPU
            fit = surrogate.fit(
                X,
                Y,
                bounds=bounds,
                seed=seed * 1000 + rnd,
                warm_start=warm,
                input_names=space.columns,
                device="cpu",
            )
            warm = fit.state
            chosen = set(order)
            available = [i for i in range(dataset.n) if i not in chosen]
            q = min(strategy.batch_size, max_exp - len(order), len(available))
            picked, _ = choose_from_pool(
                spec, space, fit.model, X, Y, None, available, q, seed=seed * 1000 + rnd
            )
            order.extend(int(i) for i in picked)
            rec.seconds.append(round(time.perf_counter() - t, 4))
            rec.proposals += len(picked)
            rnd += 1
    rec.stopped = why


def peer_driver_path() -> Path:
    """The standalone script that runs a peer planner (in the peer's own Python)."""
    return Path(__file__).with_name("peer_driver.py")


def _run_peer(
    dataset: Dataset,
    strategy: Strategy,
    seed: int,
    initial: list[int],
    targets: list[int],
    need: int,
    max_exp: int,
    peer_python: str | None,
) -> RunRecord:
    from loop.spec import CategoricalParameter, FloatParameter, IntParameter

    params: list[dict[str, Any]] = []
    for p in dataset.parameters:
        if isinstance(p, CategoricalParameter):
            params.append({"name": p.name, "kind": "categorical", "values": list(p.choices)})
        else:
            assert isinstance(p, FloatParameter | IntParameter)  # data sets have no compositions
            kind = "int" if isinstance(p, IntParameter) else "float"
            params.append({"name": p.name, "kind": kind, "low": p.low, "high": p.high})
    payload = {
        "peer": strategy.peer,
        "seed": seed,
        "parameters": params,
        "X": [[c[p["name"]] for p in params] for c in dataset.candidates],
        "y": [float(v) for v in dataset.y],
        "direction": dataset.direction,
        "initial": initial,
        "targets": targets,
        "stop_found": need,
        "max_experiments": max_exp,
        "batch_size": strategy.batch_size,
    }
    python = peer_python or sys.executable
    with tempfile.TemporaryDirectory(prefix="loop-peer-") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(payload))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.run(
            [python, str(peer_driver_path()), str(src), str(dst)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0 or not dst.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise LoopError(
                f"peer '{strategy.peer}' failed on data set '{dataset.name}' seed {seed} "
                f"(exit {proc.returncode}): {' | '.join(tail)}",
                f"install the peer with `pip install '.[bench]'` or point --peer-python at a "
                f"Python that has it (now: {python})",
            )
        out = json.loads(dst.read_text())
    order = [int(i) for i in out["order"]]
    if len(set(order)) != len(order) or order[: len(initial)] != initial:
        raise LoopError(
            f"peer '{strategy.peer}' returned an invalid sequence on '{dataset.name}' seed {seed}",
            "it must start with the initial points and never repeat a candidate",
        )
    tset = set(targets)
    return RunRecord(
        dataset.name,
        strategy.name,
        strategy.batch_size,
        seed,
        order,
        seconds=[float(s) for s in out.get("seconds", [])],
        proposals=len(order) - len(initial),
        stopped=_stop(order, tset, need, max_exp) or "peer",
        versions={str(k): str(v) for k, v in out.get("versions", {}).items()},
        notes=str(out.get("notes", "")),
    )


# -- the whole run ------------------------------------------------------------------------------
_CACHE: dict[str, Dataset] = {}


def _task(
    path: str, strategy: Strategy, seed: int, protocol: Protocol, peer_python: str | None
) -> dict[str, Any]:
    if path not in _CACHE:
        _CACHE[path] = load_dataset(path)
    return asdict(run_seed(_CACHE[path], strategy, seed, protocol, peer_python=peer_python))


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def environment() -> dict[str, Any]:
    """Versions and hardware of the run, recorded beside the results."""
    versions = {}
    for dist in ("loop-planner", "botorch", "gpytorch", "torch", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }


def dataset_info(dataset: Dataset, protocol: Protocol) -> dict[str, Any]:
    """What a summary needs to know of a data set."""
    return {
        "name": dataset.name,
        "source": dataset.source,
        "description": dataset.spec.description,
        "n_pool": dataset.n,
        "n_rows": dataset.n_rows,
        "direction": dataset.direction,
        "objective": dataset.objective_name,
        "targets": [int(i) for i in dataset.top(protocol.target_fraction)],
        "top1": [int(i) for i in dataset.top(protocol.hit_fraction)],
        "max_experiments": protocol.max_experiments(dataset.n),
    }


def run_benchmark(
    specs: list[str],
    strategies: list[Strategy],
    protocol: Protocol,
    *,
    jobs: int = 1,
    peer_python: str | None = None,
    progress: Callable[[int, int, RunRecord], None] | None = None,
) -> dict[str, Any]:
    """Run every strategy for every seed on every data set.

    Args:
        specs: Data set spec files or Olympus folders.
        strategies: What to run (`resolve_strategies`).
        protocol: Seeds, initial points, targets and stopping rule.
        jobs: Worker processes (each runs one seed at a time on one thread).
        peer_python: The Python that runs peers (default: this one).
        progress: Called after each finished seed with (done, total, record).

    Returns:
        The results document (`format` = "loop-benchmark/1"): data sets, runs, environment.

    Raises:
        LoopError: A spec or its table is invalid, or a peer failed.
    """
    protocol.check()
    datasets = {}
    for s in specs:
        d = load_dataset(s)
        if d.name in datasets:
            raise LoopError(
                f"two data set specs are named '{d.name}'", "give each spec a distinct name"
            )
        if len(d.top(protocol.target_fraction)) == 0:
            raise LoopError(
                f"data set '{d.name}' has no feasible candidate in its top "
                f"{protocol.target_fraction:.0%}",
                "loosen its constraints or raise the target fraction",
            )
        datasets[d.name] = (str(s), d)
    tasks = [
        (path, strat, protocol.seed0 + k)
        for path, _ in datasets.values()
        for strat in strategies
        for k in range(protocol.seeds)
    ]
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    if jobs <= 1:
        for i, (path, strat, seed) in enumerate(tasks, start=1):
            r = _task(path, strat, seed, protocol, peer_python)
            runs.append(r)
            if progress:
                progress(i, len(tasks), RunRecord(**r))
    else:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=get_context("spawn"), initializer=_init_worker
        ) as pool:
            pending: set[Future[dict[str, Any]]] = {
                pool.submit(_task, path, strat, seed, protocol, peer_python)
                for path, strat, seed in tasks
            }
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    r = fut.result()
                    runs.append(r)
                    if progress:
                        progress(len(runs), len(tasks), RunRecord(**r))
    runs.sort(key=lambda r: (r["dataset"], r["strategy"], r["batch_size"], r["seed"]))
    return {
        "format": FORMAT,
        "protocol": asdict(protocol),
        "datasets": {name: dataset_info(d, protocol) for name, (_, d) in datasets.items()},
        "strategies": [asdict(s) for s in strategies],
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "jobs": jobs,
        "environment": environment(),
    }
