"""Campaign specs: the shipped examples validate, and every bad spec names the key and the fix."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from loop.campaigns import load_campaign_spec
from loop.errors import SpecError
from loop.spec import (
    CampaignSpec,
    CategoricalParameter,
    CompositionParameter,
    FloatParameter,
    IntParameter,
    load_spec,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted((ROOT / "examples").glob("*.toml")) + [ROOT / "loop" / "data" / "p3ht.toml"]


def _base(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "t",
        "budget": 10,
        "parameters": [{"type": "float", "name": "x", "low": 0.0, "high": 1.0}],
        "objectives": [{"name": "y"}],
    }
    raw.update(changes)
    return raw


def _error(raw: Any, source: str = "bad.toml") -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, source)
    return info.value


# -- the shipped specs --------------------------------------------------------------------------


def test_spec_files_are_found() -> None:
    names = {p.name for p in SPEC_FILES}
    assert {"p3ht.toml", "crossed_barrel.toml", "composition.toml"} <= names


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_specs_validate(path: Path) -> None:
    spec = load_spec(path)
    assert spec.objectives and spec.budget > 0
    # the whole campaign load: paths resolved, model names known, pool read
    resolved, pool = load_campaign_spec(path)
    if spec.is_pool:
        assert pool is not None and len(pool) > 1
        assert resolved.parameters, "pool parameters are inferred"
        # identical pool rows are one candidate
        assert len({tuple(sorted(p.items())) for _, p in pool}) == len(pool)
    else:
        assert pool is None
    # a spec survives its own JSON form unchanged
    assert parse_spec(resolved.to_json()) == resolved


def test_p3ht_pool_is_inferred_as_bounded_floats() -> None:
    spec, pool = load_campaign_spec(ROOT / "examples" / "p3ht.toml")
    assert pool is not None and len(pool) == 178
    assert [p.name for p in spec.parameters] == ["p3ht", "d1", "d2", "d6", "d8"]
    for p in spec.parameters:
        assert isinstance(p, FloatParameter) and p.low < p.high
    assert spec.n_initial() == 6


def test_composition_example_has_all_parameter_kinds() -> None:
    spec = load_spec(ROOT / "examples" / "composition.toml")
    kinds = {type(p) for p in spec.parameters}
    assert kinds == {FloatParameter, IntParameter, CategoricalParameter, CompositionParameter}
    comp = next(p for p in spec.parameters if isinstance(p, CompositionParameter))
    assert comp.lower("Fe") == 0.2 and comp.upper("Co") == 0.5 and comp.upper("Fe") == 1.0
    # default initial design: dimensions + 1 (a 3-element composition has 2 free dimensions)
    assert spec.n_initial() == 6


# -- unknown keys, wrong types, missing keys ----------------------------------------------------


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    err = _error(_base(budgett=5))
    assert "bad.toml" in err.message
    assert "unknown key 'budgett'" in err.message
    assert "allowed here" in err.hint and "budget" in err.hint


def test_unknown_key_inside_a_parameter_names_the_parameter() -> None:
    raw = _base(parameters=[{"type": "float", "name": "temp", "lo": 0.0, "high": 1.0}])
    err = _error(raw)
    assert "parameters[0] ('temp').lo" in err.message
    assert "missing key 'parameters[0] ('temp').low'" in err.message
    assert "low" in err.hint and "high" in err.hint


def test_unknown_key_in_model_table() -> None:
    err = _error(_base(model={"surogate": "gp"}))
    assert "unknown key 'model.surogate'" in err.message
    assert "surrogate" in err.hint


def test_wrong_type_names_key_and_value() -> None:
    err = _error(_base(budget="ten"))
    assert "wrong type for 'budget'" in err.message and "'ten'" in err.message
    assert "budget" in err.hint


def test_missing_objectives() -> None:
    raw = _base()
    del raw["objectives"]
    err = _error(raw)
    assert "missing key 'objectives'" in err.message
    assert "objectives" in err.hint


def test_empty_objectives_list() -> None:
    err = _error(_base(objectives=[]))
    assert "objectives is empty" in err.message


def test_empty_design_space() -> None:
    err = _error(_base(parameters=[]))
    assert "design space is empty" in err.message and "[pool]" in err.message


@pytest.mark.parametrize("budget", [0, -3])
def test_budget_must_be_positive(budget: int) -> None:
    err = _error(_base(budget=budget))
    assert "'budget'" in err.message and "greater than 0" in err.message


def test_unknown_parameter_type_lists_known_types() -> None:
    err = _error(_base(parameters=[{"type": "bool", "name": "x"}]))
    assert "parameters[0] ('x')" in err.message and "'bool'" in err.message
    assert "float, int, categorical, composition" in err.hint


def test_parameter_without_type() -> None:
    err = _error(_base(parameters=[{"name": "x", "low": 0, "high": 1}]))
    assert "parameters[0] ('x')" in err.message
    assert "set type" in err.hint


# -- bounds and names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,low,high", [("float", 1.0, 1.0), ("float", 2.0, 1.0), ("int", 5, 5), ("int", 7, 3)]
)
def test_empty_bounds(kind: str, low: float, high: float) -> None:
    err = _error(_base(parameters=[{"type": kind, "name": "temp", "low": low, "high": high}]))
    assert "parameters[0] ('temp')" in err.message
    assert "empty bounds for 'temp'" in err.message and "must be below" in err.message


def test_log_scale_needs_positive_low() -> None:
    err = _error(
        _base(parameters=[{"type": "float", "name": "c", "low": 0.0, "high": 1.0, "log": True}])
    )
    assert "'c' has log = true" in err.message and "low must be > 0" in err.message


def test_infinite_bounds() -> None:
    err = _error(
        _base(parameters=[{"type": "float", "name": "x", "low": 0.0, "high": float("inf")}])
    )
    assert "must be finite" in err.message


def test_int_bounds_must_be_integers() -> None:
    err = _error(_base(parameters=[{"type": "int", "name": "n", "low": 1.5, "high": 4}]))
    assert "parameters[0] ('n').low" in err.message and "integer" in err.message


def test_duplicate_parameter_and_objective_name() -> None:
    err = _error(_base(objectives=[{"name": "x"}]))
    assert "duplicate name 'x'" in err.message
    assert "parameter 'x'" in err.message and "objective 'x'" in err.message
    assert "must be unique" in err.message


def test_duplicate_parameter_names() -> None:
    p = {"type": "float", "name": "x", "low": 0.0, "high": 1.0}
    err = _error(_base(parameters=[p, dict(p)]))
    assert "duplicate name 'x'" in err.message


def test_element_name_clashes_with_parameter() -> None:
    raw = _base(
        parameters=[
            {"type": "float", "name": "Fe", "low": 0.0, "high": 1.0},
            {"type": "composition", "name": "alloy", "elements": ["Fe", "Ni"]},
        ]
    )
    err = _error(raw)
    assert "duplicate name 'Fe'" in err.message and "element Fe" in err.message


def test_bad_name_characters() -> None:
    err = _error(_base(parameters=[{"type": "float", "name": "temp (C)", "low": 0, "high": 1}]))
    assert "'temp (C)'" in err.message and "must start with a letter" in err.message


def test_reserved_column_name_is_refused() -> None:
    err = _error(_base(objectives=[{"name": "proposal_id"}]))
    assert "reserved column name" in err.message and "rename it" in err.message


def test_std_suffix_of_an_outcome_is_reserved() -> None:
    raw = _base(parameters=[{"type": "float", "name": "y_std", "low": 0, "high": 1}])
    err = _error(raw)
    assert "'y_std' is reserved for the noise of 'y'" in err.message


def test_categorical_needs_two_distinct_choices() -> None:
    err = _error(_base(parameters=[{"type": "categorical", "name": "gas", "choices": ["air"]}]))
    assert "'gas' needs at least two choices" in err.message
    err = _error(
        _base(
            parameters=[{"type": "categorical", "name": "gas", "choices": ["air", "argon", "air"]}]
        )
    )
    assert "more than once" in err.message and "air" in err.message


# -- compositions -------------------------------------------------------------------------------


def _comp(**kw: Any) -> dict[str, Any]:
    return _base(parameters=[{"type": "composition", "name": "alloy", **kw}])


def test_composition_rejects_unknown_element_symbols() -> None:
    err = _error(_comp(elements=["Fe", "Xx"]))
    assert "parameters[0] ('alloy').elements" in err.message
    assert "not chemical element symbols: ['Xx']" in err.message


def test_composition_needs_two_elements() -> None:
    err = _error(_comp(elements=["Fe"]))
    assert "at least two elements" in err.message


def test_composition_min_names_unknown_element() -> None:
    err = _error(_comp(elements=["Fe", "Ni"], min={"Co": 0.1}))
    assert "min names elements not in elements of 'alloy'" in err.message and "Co" in err.message


def test_composition_infeasible_bounds() -> None:
    err = _error(_comp(elements=["Fe", "Ni"], min={"Fe": 0.6, "Ni": 0.6}))
    assert "no composition of 'alloy' sums to 1" in err.message and "loosen" in err.message
    err = _error(_comp(elements=["Fe", "Ni"], max={"Fe": 0.3, "Ni": 0.3}))
    assert "sums to 1" in err.message


def test_composition_min_above_max() -> None:
    err = _error(_comp(elements=["Fe", "Ni"], min={"Fe": 0.5}, max={"Fe": 0.4}))
    assert "0 <= min <= max <= total" in err.message and "Fe" in err.message


def test_composition_fixed_element() -> None:
    err = _error(_comp(elements=["Fe", "Ni", "Co"], min={"Fe": 0.5}, max={"Fe": 0.5}))
    assert "the element is fixed" in err.message


def test_pool_with_composition_is_refused() -> None:
    raw = _comp(elements=["Fe", "Ni"])
    raw["pool"] = {"path": "x.csv", "columns": ["alloy"]}
    err = _error(raw)
    assert "composition" in err.message


# -- pools, constraints, stop rules -------------------------------------------------------------


def test_pool_columns_mapping_twice() -> None:
    raw = _base(parameters=[], pool={"path": "x.csv", "columns": {"a": "A", "b": "A"}})
    err = _error(raw)
    assert "pool.columns maps several parameters to ['A']" in err.message


def test_pool_columns_empty() -> None:
    err = _error(_base(parameters=[], pool={"path": "x.csv", "columns": []}))
    assert "pool.columns is empty" in err.message


def test_pool_and_declared_parameters_disagree() -> None:
    raw = _base(pool={"path": "x.csv", "columns": ["a"]})
    err = _error(raw)
    assert "pool.columns names ['a']" in err.message and "['x']" in err.message


def test_constraint_needs_a_limit_and_must_not_be_empty() -> None:
    err = _error(_base(constraints=[{"name": "cost"}]))
    assert "constraint 'cost' needs lower, upper or both" in err.message
    err = _error(_base(constraints=[{"name": "cost", "lower": 2.0, "upper": 1.0}]))
    assert "constraint 'cost' is empty" in err.message


def test_constraint_on_an_objective_is_refused() -> None:
    err = _error(_base(constraints=[{"name": "y", "upper": 1.0}]))
    assert "constrains an objective" in err.message


def test_stop_rule_must_name_an_objective() -> None:
    err = _error(_base(stop={"target": 1.0, "objective": "z"}))
    assert "stop.objective 'z' is not an objective" in err.message and "['y']" in err.message
    spec = parse_spec(_base(stop={"target": 1.0}))
    assert spec.stop is not None and spec.stop.target == 1.0


def test_parse_spec_refuses_non_table() -> None:
    err = _error(["not", "a", "table"], "thing.json")
    assert "thing.json" in err.message and "must be a table" in err.message


def test_several_problems_are_reported_together() -> None:
    err = _error(_base(budgett=1, batch_size="four"))
    assert "budgett" in err.message and "batch_size" in err.message


def test_valid_spec_defaults() -> None:
    spec = parse_spec(_base())
    assert spec.batch_size == 4 and spec.model.surrogate == "gp"
    assert spec.model.acquisition == "qucb"
    assert spec.outcome_names == ["y"] and not spec.is_pool
    assert spec.n_initial() == 2


# -- files --------------------------------------------------------------------------------------


def test_load_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.toml")
    assert "nope.toml does not exist" in info.value.message and ".toml" in info.value.hint


def test_load_spec_invalid_toml(tmp_path: Path) -> None:
    p = tmp_path / "broken.toml"
    p.write_text('name = "x"\nbudget = = 3\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(p)
    assert "broken.toml: not valid TOML" in info.value.message and "line" in info.value.message


def test_load_spec_error_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "typo.toml"
    p.write_text(
        'name = "t"\nbudget = 5\nbudgte = 3\n'
        '[[parameters]]\ntype = "float"\nname = "x"\nlow = 0\nhigh = 1\n'
        '[[objectives]]\nname = "y"\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        load_spec(p)
    assert str(p) in info.value.message and "unknown key 'budgte'" in info.value.message


def test_missing_pool_file_names_the_path(tmp_path: Path) -> None:
    p = tmp_path / "pool.toml"
    p.write_text(
        'name = "t"\nbudget = 5\n[pool]\npath = "gone.csv"\ncolumns = ["a"]\n'
        '[[objectives]]\nname = "y"\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        load_campaign_spec(p)
    assert "gone.csv does not exist" in info.value.message and "pool.path" in info.value.hint


def test_pool_columns_missing_from_file(tmp_path: Path) -> None:
    (tmp_path / "pool.csv").write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    p = tmp_path / "pool.toml"
    p.write_text(
        'name = "t"\nbudget = 5\n[pool]\npath = "pool.csv"\ncolumns = ["a", "c"]\n'
        '[[objectives]]\nname = "y"\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        load_campaign_spec(p)
    assert "['c'] are not in the file" in info.value.message and "a, b" in info.value.hint


def test_unknown_surrogate_in_spec_lists_known_ones(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(
        'name = "t"\nbudget = 5\n[[parameters]]\ntype = "float"\nname = "x"\nlow = 0\n'
        'high = 1\n[[objectives]]\nname = "y"\n[model]\nsurrogate = "forest"\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        load_campaign_spec(p)
    assert "forest" in info.value.message and "gp" in info.value.message


# -- [compositions]: a pool of every composition of a chemical space -----------------------------


def _chem(**table: Any) -> dict[str, Any]:
    raw = _base(compositions={"elements": ["Li", "Fe", "O"], "step": 0.1, **table})
    del raw["parameters"]
    return raw


def test_compositions_derive_one_composition_parameter() -> None:
    spec = parse_spec(_chem(name="chem"))
    assert spec.is_pool
    assert spec.parameters == [CompositionParameter(name="chem", elements=["Li", "Fe", "O"])]
    assert spec.compositions is not None and spec.compositions.max_components is None
    assert spec.compositions.space().count == 3 + 3 * 9 + 36
    assert spec.n_initial() == 3  # 3 elements: 2 free dimensions, + 1
    # the stored form holds the derived parameter and parses back to the same spec
    assert parse_spec(spec.to_json()) == spec


def test_compositions_example_spec() -> None:
    spec, pool = load_campaign_spec(ROOT / "examples" / "compositions" / "li_tm_oxides.toml")
    assert spec.is_pool and spec.compositions is not None
    assert spec.compositions.charge_balanced and spec.model.surrogate == "gp"
    assert pool is not None
    rows = list(pool)
    assert len(rows) == 33 and ("Fe0.4O0.6", {"Li": 0.0, "Fe": 0.4, "Mn": 0.0, "O": 0.6}) in rows


def test_compositions_misspelt_key_lists_the_allowed_ones() -> None:
    err = _error(_chem(setp=0.1))
    assert "unknown key 'compositions.setp'" in err.message
    assert "allowed here: charge_balanced, elements, max_candidates, max_components" in err.hint
    assert "step" in err.hint


def test_compositions_step_must_divide_one() -> None:
    err = _error(_chem(step=0.3))
    assert "'compositions.step': step 0.3 does not divide 1" in err.message
    assert "0.25 (4 units)" in err.message


def test_compositions_elements_are_checked() -> None:
    assert "not chemical element symbols: ['Xx']" in _error(_chem(elements=["Li", "Xx"])).message
    assert "at least two elements" in _error(_chem(elements=["Li"])).message
    assert "listed more than once: ['O']" in _error(_chem(elements=["O", "Fe", "O"])).message


def test_compositions_components_are_checked() -> None:
    err = _error(_chem(max_components=4))
    assert "min_components <= max_components <= 3 (the number of elements)" in err.message
    err = _error(_chem(step=0.5, min_components=3))
    assert "the space holds no composition (3 elements, 3 components, step 0.5)" in err.message


def test_compositions_too_many_candidates_are_refused() -> None:
    raw = _chem(elements=["Li", "Fe", "Mn", "Ni", "Co", "O"], step=0.01)
    err = _error(raw)
    n = sum(math.comb(6, k) * math.comb(99, k - 1) for k in range(1, 7))
    assert (
        f"the space holds {n:,} compositions (6 elements, 1-6 components, step 0.01), "
        "more than max_candidates = 200,000" in err.message
    )
    assert "use a larger step, fewer elements or a lower max_components" in err.message
    raw["compositions"]["max_components"] = 2
    assert parse_spec(raw).compositions is not None  # 6 + 15 * 99 fit


def test_compositions_beside_a_pool_is_refused() -> None:
    err = _error({**_chem(), "pool": {"path": "pool.csv", "columns": ["x"]}})
    assert "both [pool] and [compositions]" in err.message


def test_compositions_beside_other_parameters_is_refused() -> None:
    err = _error({**_chem(), "parameters": _base()["parameters"]})
    assert "[[parameters]] cannot sit beside [compositions]" in err.message
    other = {"type": "composition", "name": "composition", "elements": ["Li", "O"]}
    assert "cannot sit beside" in _error({**_chem(), "parameters": [other]}).message
    same = {"type": "composition", "name": "composition", "elements": ["Li", "Fe", "O"]}
    assert parse_spec({**_chem(), "parameters": [same]}).parameters[0].name == "composition"


def test_compositions_element_clashes_with_an_objective() -> None:
    raw = _chem()
    raw["objectives"] = [{"name": "Fe"}]
    assert "duplicate name 'Fe'" in _error(raw).message


# -- cost per source ----------------------------------------------------------------------------


def test_costs_are_optional_and_old_specs_store_unchanged() -> None:
    spec = parse_spec(_base())
    assert spec.costs is None and "costs" not in spec.to_json()
    assert "costs" in CampaignSpec.model_json_schema()["properties"]
    got = parse_spec(_base(costs={"experiment": 1, "dft": 0.05}))
    assert got.costs == {"experiment": 1.0, "dft": 0.05}
    assert parse_spec(got.to_json()).costs == got.costs  # round trip through the stored JSON
    assert parse_spec(_base(costs={"literature": 0, "experiment": 2})).costs == {
        "literature": 0.0,
        "experiment": 2.0,
    }


@pytest.mark.parametrize(
    "costs,says,fix",
    [
        ({"dft": -1.0}, "costs.dft is -1.0", "dft = 1.0"),
        ({"dft": "cheap"}, "costs.dft is 'cheap'", "number of 0 or more"),
        ({"dft": True}, "costs.dft is True", "number of 0 or more"),
        ({"dft": math.inf}, "costs.dft is inf", "number of 0 or more"),
        ({" dft": 1.0}, "costs key ' dft' is not a source name", "no surrounding spaces"),
        ({"x" * 101: 1.0}, "has 101 characters", "at most 100"),
        ({}, "costs is empty", "experiment = 1.0"),
        ({"a": 0, "b": 0.0}, "every cost in costs is 0", "positive cost"),
        (3.0, "costs must be a table", "[costs]"),
    ],
)
def test_bad_costs_name_the_key_and_the_fix(costs: Any, says: str, fix: str) -> None:
    err = _error(_base(costs=costs))
    assert "'costs'" in err.message and says in err.message and fix in err.message


def test_misspelt_costs_table_lists_costs_as_allowed() -> None:
    err = _error(_base(cost={"dft": 1.0}))
    assert "unknown key 'cost'" in err.message and "costs" in err.hint
