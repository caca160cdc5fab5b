"""Replay a pool-based closed-loop campaign with a peer planner (BayBE or Ax).

Standalone script, run inside the peer's own virtual environment (it must not import
``loop``)::

    python peer_driver.py IN.json OUT.json

IN.json holds the pool (``parameters``, ``X``, ``y``), the optimisation ``direction``,
the ``initial`` pool indices (given to the peer as existing data), the ``targets`` (pool
indices of the top set), the stopping rule (``stop_found`` targets measured or
``max_experiments`` experiments, initial included), the ``batch_size`` and the ``seed``.

OUT.json holds ``order`` (pool indices in measurement order, initial first),
``seconds`` (wall seconds of each recommendation call of the peer), ``versions`` and
``notes`` (how the peer was configured).

* BayBE: discrete search space built from the pool dataframe, the default recommender
  of a ``Campaign`` (TwoPhaseMetaRecommender: random, then BotorchRecommender), with
  ``allow_recommending_already_measured=False`` so measured rows are never proposed.
  Recommendations are mapped back to pool rows by exact row match.
* Ax: ``ax.api.Client`` with its default generation strategy on the pool's bounding
  box; the initial points are attached as completed trials. Each suggestion is snapped
  to the nearest unmeasured pool row (coordinates normalised to [0, 1] by the bounding
  box, categoricals matched first); the suggested trial is marked FAILED (so it is
  neither data nor pending) and the snapped row is attached and completed with its true
  objective value, so Ax only ever sees what was really measured.

Parameters that are constant over the pool are dropped from both peers' search spaces
(neither library accepts a one-value parameter); they cannot affect row matching.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

TARGET = "y"


class Problem:
    """The replayed campaign as read from IN.json."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.peer: str = str(spec["peer"]).lower()
        self.seed: int = int(spec["seed"])
        self.parameters: list[dict[str, Any]] = list(spec["parameters"])
        self.y = np.asarray(spec["y"], dtype=float)
        self.n = len(self.y)
        self.direction: str = str(spec["direction"]).lower()
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be maximize or minimize, not {self.direction}")
        self.initial: list[int] = [int(i) for i in spec["initial"]]
        self.targets: set[int] = {int(i) for i in spec["targets"]}
        self.stop_found = int(spec["stop_found"])
        self.max_experiments = min(int(spec["max_experiments"]), self.n)
        self.batch_size = max(1, int(spec["batch_size"]))
        self.names = [f"x{j}" for j in range(len(self.parameters))]
        rows = spec["X"]
        if len(rows) != self.n:
            raise ValueError("X and y differ in length")
        if len(set(self.initial)) != len(self.initial):
            raise ValueError("initial indices repeat")
        self.frame = pd.DataFrame(
            {name: [self._cast(j, row[j]) for row in rows] for j, name in enumerate(self.names)}
        )
        # Columns that vary over the pool; constant ones are dropped for the peers.
        self.active = [j for j, name in enumerate(self.names) if self.frame[name].nunique() > 1]

    def kind(self, j: int) -> str:
        """Kind of parameter ``j``: float, int or categorical."""
        return str(self.parameters[j]["kind"])

    def _cast(self, j: int, value: Any) -> Any:
        kind = self.kind(j)
        if kind == "categorical":
            return str(value)
        if kind == "int":
            return int(round(float(value)))
        return float(value)

    def bounds(self, j: int) -> tuple[float, float]:
        """Bounding box of numerical parameter ``j`` (given low/high, widened to the pool)."""
        column = self.frame[self.names[j]]
        p = self.parameters[j]
        low = min(float(p.get("low", column.min())), float(column.min()))
        high = max(float(p.get("high", column.max())), float(column.max()))
        return low, high

    def done(self, order: list[int]) -> bool:
        """True once the stopping rule is met."""
        found = sum(1 for i in order if i in self.targets)
        return found >= self.stop_found or len(order) >= self.max_experiments

    def next_batch_size(self, order: list[int]) -> int:
        """Batch size capped by the experiment budget and what is left of the pool."""
        return min(self.batch_size, self.max_experiments - len(order), self.n - len(order))


def progress(problem: Problem, order: list[int], seconds: list[float]) -> None:
    """One stderr line every 10 recommendation calls (long Ax runs are otherwise silent)."""
    if seconds and len(seconds) % 10 == 0:
        found = sum(1 for i in order if i in problem.targets)
        print(
            f"[{problem.peer}] measured={len(order)} found={found}/{len(problem.targets)} "
            f"last_call_s={seconds[-1]:.2f}",
            file=sys.stderr,
            flush=True,
        )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def versions() -> dict[str, str | None]:
    """Installed versions of the peer stack."""
    out: dict[str, str | None] = {}
    for dist in ("baybe", "ax-platform", "botorch", "gpytorch", "torch", "numpy", "pandas"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def row_key(problem: Problem, row: Any) -> tuple[Any, ...]:
    """Hashable key of a pool row restricted to the active columns."""
    key: list[Any] = []
    for j in problem.active:
        value = row[problem.names[j]]
        key.append(str(value) if problem.kind(j) == "categorical" else float(value))
    return tuple(key)


def run_baybe(problem: Problem) -> tuple[list[int], list[float], str]:
    """Replay the campaign with BayBE's default Campaign recommender."""
    from baybe import Campaign
    from baybe.parameters import CategoricalParameter, NumericalDiscreteParameter
    from baybe.searchspace import SearchSpace
    from baybe.settings import active_settings
    from baybe.targets import NumericalTarget

    active_settings.random_seed = problem.seed
    params: list[Any] = []
    for j in problem.active:
        name = problem.names[j]
        values = sorted(problem.frame[name].unique().tolist())
        if problem.kind(j) == "categorical":
            params.append(CategoricalParameter(name=name, values=[str(v) for v in values]))
        else:
            params.append(NumericalDiscreteParameter(name=name, values=[float(v) for v in values]))
    names = [problem.names[j] for j in problem.active]
    pool = problem.frame[names].copy()
    for j in problem.active:
        if problem.kind(j) != "categorical":
            pool[problem.names[j]] = pool[problem.names[j]].astype(float)
    searchspace = SearchSpace.from_dataframe(pool, params)
    target = NumericalTarget(name=TARGET, minimize=problem.direction == "minimize")
    campaign = Campaign(
        searchspace=searchspace,
        objective=target,
        allow_recommending_already_measured=False,
    )
    index_of = {row_key(problem, row): i for i, row in pool.iterrows()}
    if len(index_of) != problem.n:
        raise ValueError("pool rows are not unique over the varying parameters")

    def measured(indices: list[int]) -> pd.DataFrame:
        data = pool.iloc[indices].reset_index(drop=True)
        data[TARGET] = problem.y[indices]
        return data

    order = list(problem.initial)
    seconds: list[float] = []
    if order:
        campaign.add_measurements(measured(order))
    taken = set(order)
    while not problem.done(order):
        k = problem.next_batch_size(order)
        if k <= 0:
            break
        start = time.perf_counter()
        rec = campaign.recommend(batch_size=k)
        seconds.append(time.perf_counter() - start)
        batch: list[int] = []
        for _, row in rec.iterrows():
            i = index_of[row_key(problem, row)]
            if i in taken or i in batch:
                raise RuntimeError(f"BayBE re-recommended pool row {i}")
            batch.append(i)
        order.extend(batch)
        taken.update(batch)
        campaign.add_measurements(measured(batch))
        progress(problem, order, seconds)
    notes = (
        f"BayBE Campaign with default recommender {type(campaign.recommender).__name__} "
        "(RandomRecommender until the first measurements, then BotorchRecommender with "
        "default surrogate/acquisition); SearchSpace.from_dataframe over the pool "
        "(numeric columns as NumericalDiscreteParameter, categoricals as "
        "CategoricalParameter with default encoding); NumericalTarget "
        f"minimize={problem.direction == 'minimize'}; "
        "allow_recommending_already_measured=False; "
        f"initial {len(problem.initial)} points added as one measurement batch; "
        f"recommend(batch_size<={problem.batch_size}); settings.random_seed={problem.seed}."
    )
    return order, seconds, notes


class Snapper:
    """Nearest unmeasured pool row to a suggestion, in bounding-box coordinates."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.numeric = [j for j in problem.active if problem.kind(j) != "categorical"]
        self.categorical = [j for j in problem.active if problem.kind(j) == "categorical"]
        self.low = np.array([problem.bounds(j)[0] for j in self.numeric], dtype=float)
        span = np.array([problem.bounds(j)[1] for j in self.numeric], dtype=float) - self.low
        self.span = np.where(span > 0, span, 1.0)
        self.unit = self._unit(problem.frame[[problem.names[j] for j in self.numeric]])
        self.labels = problem.frame[[problem.names[j] for j in self.categorical]].to_numpy(
            dtype=object
        )

    def _unit(self, values: Any) -> np.ndarray:
        return (np.asarray(values, dtype=float) - self.low) / self.span

    def snap(self, suggestion: dict[str, Any], taken: set[int]) -> int:
        """Pool index of the nearest row not in ``taken``.

        Rows whose categoricals all match come first (fewest mismatches, i.e. a
        mismatch costs 1 and any match beats it); ties by Euclidean distance in the
        unit box, then by pool index.
        """
        names = self.problem.names
        point = self._unit([float(suggestion[names[j]]) for j in self.numeric])
        dist = np.sqrt(((self.unit - point) ** 2).sum(axis=1))
        wanted = np.array([str(suggestion[names[j]]) for j in self.categorical], dtype=object)
        mismatches = (self.labels != wanted).sum(axis=1) if self.categorical else 0
        cost = np.broadcast_to(mismatches, dist.shape).astype(float)
        free = np.ones(self.problem.n, dtype=bool)
        free[list(taken)] = False
        candidates = np.flatnonzero(free)
        ranked = np.lexsort((candidates, dist[candidates], cost[candidates]))
        return int(candidates[ranked[0]])


def node_counts(client: Any) -> str:
    """How many suggestions each generation node of the Ax strategy produced."""
    counts: dict[str, int] = {}
    for trial in client._experiment.trials.values():
        runs = trial.generator_runs
        name = runs[0]._generation_node_name if runs else None
        if name:  # attached (measured) trials have no node
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} x{count}" for name, count in counts.items()) or "none"


def run_ax(problem: Problem) -> tuple[list[int], list[float], str]:
    """Replay the campaign with Ax's default generation strategy, snapping to the pool."""
    from ax.api import ChoiceParameterConfig, Client, RangeParameterConfig

    logging.disable(logging.INFO)  # Ax logs every trial at INFO
    configs: list[Any] = []
    for j in problem.active:
        name = problem.names[j]
        kind = problem.kind(j)
        if kind == "categorical":
            values = sorted(str(v) for v in problem.frame[name].unique())
            configs.append(
                ChoiceParameterConfig(
                    name=name, values=values, parameter_type="str", is_ordered=False
                )
            )
        else:
            low, high = problem.bounds(j)
            if kind == "int":
                bounds = (float(math.floor(low)), float(math.ceil(high)))
                configs.append(RangeParameterConfig(name=name, bounds=bounds, parameter_type="int"))
            else:
                configs.append(
                    RangeParameterConfig(name=name, bounds=(low, high), parameter_type="float")
                )
    client = Client(random_seed=problem.seed)
    client.configure_experiment(parameters=configs, name="pool_replay")
    sign = "-" if problem.direction == "minimize" else ""
    client.configure_optimization(objective=f"{sign}{TARGET}")

    def parameterization(i: int) -> dict[str, Any]:
        row = problem.frame.iloc[i]
        out: dict[str, Any] = {}
        for j in problem.active:
            value = row[problem.names[j]]
            kind = problem.kind(j)
            if kind == "categorical":
                out[problem.names[j]] = str(value)
            elif kind == "int":
                out[problem.names[j]] = int(value)
            else:
                out[problem.names[j]] = float(value)
        return out

    def measure(i: int) -> None:
        # No arm name: a suggestion that was exactly this row already holds its arm.
        trial = client.attach_trial(parameters=parameterization(i))
        client.complete_trial(trial_index=trial, raw_data={TARGET: float(problem.y[i])})

    order = list(problem.initial)
    for i in order:
        measure(i)
    taken = set(order)
    snapper = Snapper(problem)
    seconds: list[float] = []
    exact = 0
    while not problem.done(order):
        k = problem.next_batch_size(order)
        if k <= 0:
            break
        start = time.perf_counter()
        trials = client.get_next_trials(max_trials=k)
        seconds.append(time.perf_counter() - start)
        if not trials:
            raise RuntimeError("Ax generated no trial")
        batch: list[int] = []
        for trial_index, suggestion in sorted(trials.items()):
            i = snapper.snap(dict(suggestion), taken | set(batch))
            if parameterization(i) == dict(suggestion):
                exact += 1
            # The suggestion itself is never measured: FAILED trials carry no data and
            # are not pending, so Ax models only the snapped, truly measured rows.
            client.mark_trial_failed(trial_index=trial_index)
            batch.append(i)
        for i in batch:
            measure(i)
        order.extend(batch)
        taken.update(batch)
        progress(problem, order, seconds)
    strategy = client._generation_strategy  # read-only, for the notes
    notes = (
        f"Ax Client(random_seed={problem.seed}) with the default generation strategy "
        f"'{strategy.name}' (configure_generation_strategy never called: method='fast', "
        "initialization_budget default 5 counting attached trials, center point node "
        "skipped when trials exist); float/int RangeParameterConfig on the pool bounding "
        "box, categoricals as unordered ChoiceParameterConfig; objective "
        f"'{sign}{TARGET}'; initial {len(problem.initial)} points attached as completed "
        f"trials; get_next_trials(max_trials<={problem.batch_size}); each suggestion "
        "snapped to the nearest unmeasured pool row (unit-box Euclidean distance, "
        "categorical mismatches ranked first), suggested trial marked FAILED, snapped row "
        f"attached and completed with its true y; {exact} of the suggestions were already "
        f"pool rows. Generation nodes per suggestion: {node_counts(client)}."
    )
    return order, seconds, notes


def main(argv: list[str]) -> int:
    """Entry point: ``peer_driver.py IN.json OUT.json``."""
    if len(argv) != 3:
        print(__doc__.splitlines()[0], file=sys.stderr)
        print("usage: python peer_driver.py IN.json OUT.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        problem = Problem(json.load(handle))
    seed_everything(problem.seed)
    if problem.peer == "baybe":
        order, seconds, notes = run_baybe(problem)
    elif problem.peer == "ax":
        order, seconds, notes = run_ax(problem)
    else:
        raise ValueError(f"unknown peer {problem.peer!r}")
    if len(set(order)) != len(order):
        raise RuntimeError("a pool index was measured twice")
    out = {"order": order, "seconds": seconds, "versions": versions(), "notes": notes}
    with open(argv[2], "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
