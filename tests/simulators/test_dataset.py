"""Tests of the data-set oracle on the shipped P3HT table (`loop/data/p3ht.csv`)."""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from loop.errors import LoopError
from loop.simulators import SIMULATORS, DatasetSimulator, input_key, make_simulator
from loop.spec import parse_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INPUTS = {
    "p3ht": "P3HT content (%)",
    "d1": "D1 content (%)",
    "d2": "D2 content (%)",
    "d6": "D6 content (%)",
    "d8": "D8 content (%)",
}
OUTPUTS = {"conductivity": "Conductivity (measured) (S/cm)"}
# the first row of the file; measured twice (12.77 on line 2, 16.94 on line 6)
REPLICATED = {"p3ht": 45.0, "d1": 0.0, "d2": 55.0, "d6": 0.0, "d8": 0.0}


def _data_dir() -> Path:
    return Path(str(resources.files("loop").joinpath("data")))


def _oracle(replicates: str = "mean") -> DatasetSimulator:
    return DatasetSimulator.from_options(
        {"path": "package:p3ht.csv", "inputs": INPUTS, "outputs": OUTPUTS, "replicates": replicates}
    )


def _by_hand() -> dict[tuple[float, ...], list[float]]:
    """Conductivities grouped by input row, read with nothing but `csv`."""
    groups: dict[tuple[float, ...], list[float]] = defaultdict(list)
    with open(_data_dir() / "p3ht.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = tuple(float(row[c]) for c in INPUTS.values())
            groups[key].append(float(row[OUTPUTS["conductivity"]]))
    return groups


def _spec(simulator: dict[str, object]) -> dict[str, object]:
    return {
        "name": "t",
        "budget": 10,
        "pool": {"path": "p3ht.csv", "columns": INPUTS},
        "objectives": [{"name": "conductivity"}],
        "simulator": simulator,
    }


def test_counts_rows_and_unique_inputs() -> None:
    sim = _oracle()
    assert sim.n_rows == 233
    assert len(sim) == 178
    cands = sim.candidates()
    assert len(cands) == 178
    assert cands[0] == REPLICATED  # file order
    assert len({input_key(c.values()) for c in cands}) == 178


def test_mean_averages_replicates() -> None:
    sim = _oracle("mean")
    hand = _by_hand()[tuple(REPLICATED.values())]
    assert hand == [12.77, 16.94]
    out = sim.measure(dict(REPLICATED), np.random.default_rng(0))
    assert out == {"conductivity": pytest.approx((12.77 + 16.94) / 2)}
    assert sim.mean(REPLICATED)["conductivity"] == pytest.approx(sum(hand) / len(hand))


def test_sample_returns_one_replicate_and_is_seeded() -> None:
    sim = _oracle("sample")
    draws = [sim.measure(REPLICATED, np.random.default_rng(s))["conductivity"] for s in range(40)]
    assert set(draws) == {12.77, 16.94}
    again = [sim.measure(REPLICATED, np.random.default_rng(s))["conductivity"] for s in range(40)]
    assert draws == again


def test_lookup_tolerates_float_text_round_trip() -> None:
    sim = _oracle()
    near = {k: v * (1 + 1e-13) for k, v in REPLICATED.items()}  # relative: 10 digits
    assert sim.measure(near, np.random.default_rng(0)) == sim.mean(REPLICATED)
    as_text = {k: str(v) for k, v in REPLICATED.items()}
    assert sim.key(as_text) == sim.key(REPLICATED)


def test_unknown_input_raises() -> None:
    sim = _oracle()
    with pytest.raises(LoopError, match="only knows the 178 inputs"):
        sim.measure({**REPLICATED, "p3ht": 45.1}, np.random.default_rng(0))
    with pytest.raises(LoopError, match="needs parameters"):
        sim.measure({"p3ht": 45.0}, np.random.default_rng(0))


def test_missing_column_names_the_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(LoopError, match="no column 'c'") as err:
        DatasetSimulator.from_options(
            {"path": "t.csv", "inputs": {"x": "a"}, "outputs": {"y": "c"}}, base_dir=tmp_path
        )
    assert "t.csv" in str(err.value)


def test_non_number_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,oops\n", encoding="utf-8")
    with pytest.raises(LoopError, match=r"t\.csv, line 3, column 'b': 'oops'"):
        DatasetSimulator.from_options(
            {"path": "t.csv", "inputs": {"x": "a"}, "outputs": {"y": "b"}}, base_dir=tmp_path
        )


def test_unknown_simulator_lists_known_names() -> None:
    spec = parse_spec(_spec({"name": "nope"}))
    with pytest.raises(LoopError, match="unknown simulator 'nope'") as err:
        make_simulator(spec, _data_dir())
    assert "dataset" in str(err.value)
    assert SIMULATORS["dataset"] is DatasetSimulator


def test_outputs_must_cover_the_objectives() -> None:
    spec = parse_spec(
        _spec({"name": "dataset", "options": {"outputs": {"other": OUTPUTS["conductivity"]}}})
    )
    with pytest.raises(LoopError, match=r"no output for \['conductivity'\]"):
        make_simulator(spec, _data_dir())


def test_top_five_percent_maximize_and_minimize() -> None:
    sim = _oracle()
    means = {k: sum(v) / len(v) for k, v in _by_hand().items()}
    n = math.ceil(0.05 * 178)
    assert n == 9
    top = sim.top_fraction_keys(0.05, direction="maximize")
    assert len(top) == n
    best = sorted(means, key=means.__getitem__, reverse=True)[:n]
    assert top == {input_key(k) for k in best}
    assert min(means[k] for k in best) > sorted(means.values())[-n - 1]  # no tie at the edge
    low = sim.top_fraction_keys(0.05, direction="minimize")
    assert low == {input_key(k) for k in sorted(means, key=means.__getitem__)[:n]}
    assert not top & low
    params, value = sim.best()
    assert sim.key(params) in top and value == pytest.approx(max(means.values()))


def test_shipped_demo_spec_builds_its_oracle() -> None:
    path = _data_dir() / "p3ht.toml"
    spec = parse_spec(tomllib.loads(path.read_text(encoding="utf-8")), str(path))
    sim = make_simulator(spec, path.parent)
    assert isinstance(sim, DatasetSimulator)
    assert len(sim) == 178
    assert sim.top_fraction_keys(0.05) == _oracle().top_fraction_keys(0.05, direction="maximize")


def test_spec_without_simulator_raises() -> None:
    raw = _spec({"name": "dataset"})
    del raw["simulator"]
    with pytest.raises(LoopError, match="has no simulator"):
        make_simulator(parse_spec(raw))
