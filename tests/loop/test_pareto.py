"""The Pareto front `loop status` reports for campaigns with several objectives."""

from __future__ import annotations

from types import SimpleNamespace

from loop.spec import parse_spec
from loop.status import pareto_front

SPEC = {
    "name": "front",
    "budget": 10,
    "parameters": [{"type": "float", "name": "x", "low": 0.0, "high": 1.0}],
    "objectives": [
        {"name": "strength", "direction": "maximize"},
        {"name": "cost", "direction": "minimize", "reference": 5.0},
    ],
    "constraints": [{"name": "porosity", "upper": 0.1}],
}


def _m(i: int, strength: float, cost: float, porosity: float) -> SimpleNamespace:
    values = {"strength": strength, "cost": cost, "porosity": porosity}
    return SimpleNamespace(id=i, proposal_id=None, params={"x": i / 10}, values=values)


def test_front_keeps_feasible_non_dominated_measurements_strongest_first() -> None:
    spec = parse_spec(SPEC, "test")
    assert spec.objectives[1].reference == 5.0
    ms = [
        _m(1, 10.0, 3.0, 0.05),  # on the front
        _m(2, 8.0, 1.0, 0.05),  # on the front: cheaper
        _m(3, 7.0, 2.0, 0.05),  # dominated by 2
        _m(4, 12.0, 0.5, 0.50),  # best at both, but too porous: infeasible
        _m(5, 10.0, 3.0, 0.01),  # equal to 1 on both objectives: both stay
        _m(6, 9.0, 3.0, 0.05),  # dominated by 1 (weaker, same cost)
    ]
    front = pareto_front(spec, ms)
    assert [f["measurement"] for f in front] == [1, 5, 2]
    assert front[2]["values"] == {"strength": 8.0, "cost": 1.0}
