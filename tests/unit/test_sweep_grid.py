"""Sweep grids: validation, canonical expansion, per-day seeds and quote/trade pairing."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeg.errors import SweepError
from repeg.lab.models import FillModelName
from repeg.lab.sweep_grid import (
    SymbolDay,
    day_key,
    derive_seed,
    expand,
    grid_from_mapping,
    load_grid,
    pair_files,
)

GRID = {
    "seed": 3,
    "fill_models": ["queue", "paper"],
    "basket": {"count": 4},
    "policy": [
        {
            "name": "ladder",
            "kind": "ladder",
            "fixed": {"escalation": "market"},
            "grid": {"fill_wait_seconds": [5, 10], "initial_offset": [0.0, 0.25]},
        },
        {"name": "market", "kind": "market"},
    ],
}
DAYS = (SymbolDay(quotes_file="b_20180103_q.csv.gz"), SymbolDay(quotes_file="a_20180102_q.csv.gz"))


def test_expansion_is_the_full_product_numbered_in_canonical_order() -> None:
    points = expand(grid_from_mapping(GRID), DAYS)
    assert len(points) == 2 * 2 * (4 + 1)
    assert [p.point_id for p in points] == list(range(len(points)))
    keys = [(p.data.quotes_file, p.fill_model.value, p.policy) for p in points]
    assert keys == sorted(keys)
    assert points[0].data.quotes_file.startswith("a_")
    assert points[0].fill_model is FillModelName.PAPER


def test_point_params_join_fixed_and_swept_values_and_label_the_swept_ones() -> None:
    points = expand(grid_from_mapping(GRID), DAYS[:1])
    ladder = [p for p in points if p.kind == "ladder" and p.fill_model is FillModelName.PAPER]
    assert ladder[0].policy == "ladder[fill_wait_seconds=10,initial_offset=0.0]"
    assert ladder[0].params == {"escalation": "market", "fill_wait_seconds": 10, "initial_offset": 0.0}


def test_expansion_does_not_depend_on_the_order_days_are_given() -> None:
    grid = grid_from_mapping(GRID)
    assert expand(grid, DAYS) == expand(grid, DAYS[::-1])


def test_every_policy_on_a_day_shares_that_days_seed() -> None:
    points = expand(grid_from_mapping(GRID), DAYS)
    seeds_by_day: dict[str, set[int]] = {}
    for p in points:
        seeds_by_day.setdefault(p.data.quotes_file, set()).add(p.seed)
    assert all(len(s) == 1 for s in seeds_by_day.values())
    assert len({next(iter(s)) for s in seeds_by_day.values()}) == 2


def test_derived_seed_is_stable_and_depends_on_the_base_seed() -> None:
    day = SymbolDay(quotes_file="/x/xxx_20180102_nyse_bbo.csv.gz")
    assert derive_seed(1, day) == derive_seed(
        1, SymbolDay(quotes_file="elsewhere/xxx_20180102_nyse_bbo.csv.gz")
    )
    assert derive_seed(1, day) != derive_seed(2, day)
    assert 0 <= derive_seed(1, day) < 2**63


def test_empty_swept_list_is_refused_with_its_key() -> None:
    bad = {"policy": [{"name": "l", "kind": "ladder", "grid": {"initial_offset": []}}]}
    with pytest.raises(SweepError, match=r"grid\.initial_offset is an empty list"):
        grid_from_mapping(bad)


def test_a_parameter_both_fixed_and_swept_is_refused() -> None:
    bad = {"policy": [{"name": "l", "kind": "ladder", "fixed": {"a": 1}, "grid": {"a": [1, 2]}}]}
    with pytest.raises(SweepError, match="both fixed and swept"):
        grid_from_mapping(bad)


def test_unknown_top_level_key_is_refused_by_name() -> None:
    with pytest.raises(SweepError, match="sed"):
        grid_from_mapping({"sed": 1, "policy": [{"name": "m", "kind": "market"}]})


def test_duplicate_policy_labels_are_refused() -> None:
    twice = {"policy": [{"name": "m", "kind": "market"}, {"name": "m", "kind": "market"}]}
    with pytest.raises(SweepError, match="same label"):
        expand(grid_from_mapping(twice), DAYS)


def test_load_grid_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text('seed = 9\n[[policy]]\nname = "m"\nkind = "market"\n')
    assert load_grid(path).seed == 9


def test_quotes_pair_with_the_trades_of_the_same_day() -> None:
    days = pair_files(
        ["d/xxx_20180103_nyse_bbo.csv.gz", "d/xxx_20180102_nyse_bbo.csv.gz"],
        ["d/xxx_20180102_trades.csv.gz", "d/xxx_20180103_trades.csv.gz"],
    )
    assert [(Path(d.quotes_file).name[:12], Path(d.trades_file or "").name[:12]) for d in days] == [
        ("xxx_20180102", "xxx_20180102"),
        ("xxx_20180103", "xxx_20180103"),
    ]


def test_a_quote_file_without_its_trades_is_an_error() -> None:
    with pytest.raises(SweepError, match="no trade file"):
        pair_files(["xxx_20180102_q.csv"], ["xxx_20180103_t.csv"])


def test_day_key_needs_a_date_in_the_name() -> None:
    assert day_key("/a/xxx_20180102_nyse_bbo.csv.gz") == "xxx_20180102"
    with pytest.raises(SweepError, match="YYYYMMDD"):
        day_key("quotes.csv")


def test_point_spec_is_the_policy_kind_with_the_points_parameters_and_label() -> None:
    from decimal import Decimal

    from repeg.lab.policies import LadderSpec
    from repeg.lab.sweep_point import point_spec

    ladder = next(p for p in expand(grid_from_mapping(GRID), DAYS[:1]) if p.kind == "ladder")
    spec = point_spec(ladder)
    assert isinstance(spec, LadderSpec)
    assert spec.name == ladder.policy
    assert spec.fill_wait_seconds == ladder.params["fill_wait_seconds"]
    assert spec.initial_offset == Decimal(str(ladder.params["initial_offset"]))


def test_point_spec_refuses_a_bad_parameter_naming_the_point() -> None:
    from repeg.lab.sweep_point import point_spec

    point = expand(grid_from_mapping(GRID), DAYS[:1])[0]
    bad = point.model_copy(update={"kind": "ladder", "params": {"fill_wait_seconds": 0}})
    with pytest.raises(SweepError, match=r"point 0 .*fill_wait_seconds"):
        point_spec(bad)


def _ladder_grid(**policy: object) -> dict[str, object]:
    return {"policy": [{"name": "l", "kind": "ladder", **policy}]}


def test_a_swept_value_the_policy_refuses_is_refused_when_the_grid_is_read() -> None:
    # It was accepted here and refused only when its point ran, in a worker, after the points before it.
    bad = _ladder_grid(grid={"repeg_steps": [[0.5, 1.0], [0.75, 0.5]]})
    with pytest.raises(SweepError) as caught:
        grid_from_mapping(bad)
    assert "repeg_steps=[0.75, 0.5]" in caught.value.reason
    assert "l[repeg_steps=[0.75,0.5]]" in caught.value.reason


def test_a_fixed_key_no_policy_takes_is_refused_when_the_grid_is_read() -> None:
    with pytest.raises(SweepError, match=r"escalate: unknown key \(not permitted here\)"):
        grid_from_mapping(_ladder_grid(fixed={"escalate": True}))


def test_an_unknown_policy_kind_is_refused_when_the_grid_is_read() -> None:
    with pytest.raises(SweepError, match=r"policy 'x': kind='twap': "):
        grid_from_mapping({"policy": [{"name": "x", "kind": "twap"}]})


def test_a_collared_ladder_beyond_the_labs_price_collar_is_refused_when_the_grid_is_read() -> None:
    # Valid as a spec, refused by the run configuration it backtests under (price_collar_pct 5 = 500 bps).
    bad = _ladder_grid(fixed={"escalation": "collared_limit"}, grid={"escalation_collar_bps": [50, 600]})
    # The value as the grid writes it: it read "escalation_collar_bps=Decimal('600')", Python's repr.
    with pytest.raises(SweepError, match=r"escalation_collar_bps=600: a collared escalation"):
        grid_from_mapping(bad)


def test_a_basket_budget_given_as_a_boolean_is_refused_not_read_as_one_second() -> None:
    with pytest.raises(SweepError, match=r"basket\.budget_seconds"):
        grid_from_mapping({"basket": {"budget_seconds": True}, "policy": [{"name": "m", "kind": "market"}]})


def test_a_grid_file_that_is_not_utf8_is_a_sweep_error_naming_it(tmp_path: Path) -> None:
    # UnicodeDecodeError escaped load_grid: `repeg sweep` crashed with a traceback (exit 1), not exit 2.
    path = tmp_path / "grid.toml"
    path.write_bytes(b'seed = 1\n# caf\xe9\n[[policy]]\nname = "m"\nkind = "market"\n')
    with pytest.raises(SweepError) as caught:
        load_grid(path)
    assert caught.value.where == str(path)


@pytest.mark.parametrize("where", ["fixed", "grid"])
@pytest.mark.parametrize("key", ["kind", "name"])
def test_a_policys_own_kind_or_name_given_as_a_parameter_is_refused(where: str, key: str) -> None:
    # A swept `kind` ran each point as another policy while its record said "ladder"; a `name` renamed the run.
    value = "market" if key == "kind" else "other"
    policy = {"name": "l", "kind": "ladder", where: {key: [value] if where == "grid" else value}}
    with pytest.raises(SweepError, match=rf"policy 'l': {key} is the policy's own key"):
        grid_from_mapping({"policy": [policy]})


def _market_grid(**top: object) -> dict[str, object]:
    return {**top, "policy": [{"name": "m", "kind": "market"}]}


def test_an_empty_fill_model_list_is_refused() -> None:
    # The grid expanded to no point at all: the sweep "succeeded" and wrote an empty file.
    with pytest.raises(SweepError, match=r"fill_models"):
        grid_from_mapping(_market_grid(fill_models=[]))


def test_a_fill_model_listed_twice_is_refused() -> None:
    # Every point ran twice, and each record was in the file twice.
    with pytest.raises(SweepError, match=r"fill_models"):
        grid_from_mapping(_market_grid(fill_models=["paper", "queue", "paper"]))


@pytest.mark.parametrize(
    ("top", "shown"),
    [
        ({"fill_models": ["Paper"]}, "fill_models.0='Paper': Input should be 'paper' or 'queue'"),
        ({"basket": {"spacing": "Even"}}, "basket.spacing='Even': Input should be 'even' or 'random'"),
    ],
)
def test_a_grid_choice_in_another_case_is_refused_naming_key_value_and_choices(
    top: dict[str, object], shown: str
) -> None:
    # Choices are case-sensitive, as the run configuration's are (on_no_quote = "Skip" is refused naming the value),
    # but a grid's refusal said "fill_models.0: Input should be 'paper' or 'queue'": the value the user wrote, here
    # one of the choices in another case, was not shown (pydantic's msg does not hold it, whatever the comment said).
    with pytest.raises(SweepError) as caught:
        grid_from_mapping(_market_grid(**top))
    assert f"grid: {shown}" in str(caught.value)


@pytest.mark.parametrize(
    ("top", "key"), [({"seed": True}, "seed"), ({"basket": {"count": True}}, "basket.count")]
)
def test_a_boolean_grid_seed_or_basket_count_is_refused_not_read_as_one(
    top: dict[str, object], key: str
) -> None:
    with pytest.raises(SweepError, match=rf"{key}"):
        grid_from_mapping(_market_grid(**top))


@pytest.mark.parametrize("where", ["fixed", "grid"])
def test_a_boolean_in_a_list_parameter_is_refused_not_read_as_one(where: str) -> None:
    # `repeg_steps = [0.5, true]` was read as [0.5, 1]: the grid's list type took the boolean for the number 1
    # before the ladder (which refuses a boolean step) saw it.
    steps = [0.5, True]
    bad = _ladder_grid(
        **({"fixed": {"repeg_steps": steps}} if where == "fixed" else {"grid": {"repeg_steps": [steps]}})
    )
    with pytest.raises(SweepError, match=r"repeg_steps"):
        grid_from_mapping(bad)


@pytest.mark.parametrize(
    ("fixed", "key"),
    [
        ({"wait_seconds": "PKSECRETSECRETSECRET0123456789ABCDEFGHIJ"}, "wait_seconds"),
        ({"secret_key": "PKSECRETSECRETSECRET0123456789ABCDEFGHIJ"}, "secret_key"),
    ],
    ids=["wrong-kind", "unknown-key"],
)
def test_a_grid_value_that_could_be_a_secret_is_not_printed(fixed: dict[str, object], key: str) -> None:
    # The sweep printed a policy parameter's value as pydantic received it ("wait_seconds='PK...'", "secret_key=
    # 'PK...'") and chained pydantic's error, which prints it again; a policy file refuses them by key and kind.
    import traceback

    raw = {"policy": [{"name": "a", "kind": "touch-then-market", "fixed": fixed}]}
    with pytest.raises(SweepError) as caught:
        grid_from_mapping(raw)
    assert f"policy 'a': {key}: " in str(caught.value)
    assert "PKSECRET" not in "".join(traceback.format_exception(caught.value))


def test_a_grid_key_of_the_wrong_kind_is_not_printed_in_the_errors_traceback() -> None:
    # The SweepError named the key and pydantic's reason only, but was chained to pydantic's error, whose text
    # prints input_value='<what was given>': a script letting it go uncaught printed it.
    import traceback

    secret = "PK" + "S3CRET" * 6  # built here: the traceback quotes this test's own source lines
    with pytest.raises(SweepError) as caught:
        grid_from_mapping({**GRID, "seed": secret})
    assert secret not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("grid", "key"),
    [
        ({"wait_seconds": ["PKSECRETSECRETSECRET0123456789ABCDEFGHIJ"]}, "wait_seconds"),
        ({"secret_key": ["PKSECRETSECRETSECRET0123456789ABCDEFGHIJ"]}, "secret_key"),
    ],
    ids=["wrong-kind", "unknown-key"],
)
def test_a_swept_value_that_could_be_a_secret_is_not_printed_in_the_variants_label(
    grid: dict[str, object], key: str
) -> None:
    # 76ea140 withheld a fixed value, but the refusal names the variant by its label, which spells every swept
    # value: "policy 'a[secret_key="PK..."]': secret_key: unknown key". The label now says such a value's kind.
    import traceback

    raw = {"policy": [{"name": "a", "kind": "touch-then-market", "grid": grid}]}
    with pytest.raises(SweepError) as caught:
        grid_from_mapping(raw)
    assert f"policy 'a[{key}=<a string>]': {key}: " in str(caught.value)
    assert "PKSECRET" not in "".join(traceback.format_exception(caught.value))


def test_an_adaptive_policy_without_a_params_file_is_refused_when_the_grid_is_read() -> None:
    # A sweep has no fit data: such a variant was accepted here, then failed in a worker when its first point
    # ran, after the points before it had run.
    with pytest.raises(SweepError, match=r"policy 'a': .*params_file"):
        grid_from_mapping({"policy": [{"name": "a", "kind": "adaptive"}]})


def test_an_adaptive_params_file_that_cannot_be_read_is_refused_when_the_grid_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_params.json"
    grid = {"policy": [{"name": "a", "kind": "adaptive", "fixed": {"params_file": str(missing)}}]}
    with pytest.raises(SweepError, match=r"policy 'a': .*no_such_params\.json"):
        grid_from_mapping(grid)
