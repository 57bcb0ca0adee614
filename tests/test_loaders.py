"""Loaders: every bad input gives one error naming file, line and field; good input loads to the right numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import CliResult
from modelarb.data import load_market
from modelarb.data.outcomes import repository_of
from modelarb.errors import DataError

# --- the paper's JSONL folder layout -------------------------------------------------------------

GOOD_ALPHA = [
    {"id": "django__django-1", "mean_cost": 0.5, "attempts": [1, 0, 1]},
    {"id": "django__django-2", "mean_cost": 1.0, "attempts": [0]},
    {"id": "sympy__sympy-3", "mean_cost": 2.0, "attempts": [True, True]},
]
GOOD_BETA = [
    {"id": "sympy__sympy-3", "mean_cost": 4.0, "attempts": [False, True, False, False]},
    {"id": "django__django-1", "mean_cost": 3.0, "attempts": [1]},
    {"id": "django__django-2", "mean_cost": 3.5, "attempts": [0, 0]},
    {"id": "only-beta", "mean_cost": 1.0, "attempts": [1]},
]


def write_jsonl(folder: Path, provider: str, rows: list[dict[str, Any]] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{provider}.jsonl"
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def with_alpha_row(k: int, **changes: Any) -> list[dict[str, Any]]:
    """GOOD_ALPHA with row k changed (a value of None drops the field)."""
    rows = [dict(r) for r in GOOD_ALPHA]
    rows[k].update(changes)
    rows[k] = {key: value for key, value in rows[k].items() if value is not None}
    return rows


JSONL_CASES: dict[str, tuple[list[dict[str, Any]] | str, list[str]]] = {
    "missing field": (with_alpha_row(1, mean_cost=None), ["line 2", "missing field 'mean_cost'"]),
    "attempt 2": (with_alpha_row(0, attempts=[1, 2]), ["line 1", "'attempts'", "2", "0, 1, true or false"]),
    "attempt as text": (with_alpha_row(2, attempts=["1"]), ["line 3", "'attempts'", "0, 1, true or false"]),
    "empty attempts": (with_alpha_row(1, attempts=[]), ["line 2", "'attempts' is empty"]),
    "negative cost": (with_alpha_row(2, mean_cost=-0.1), ["line 3", "'mean_cost' is -0.1", "finite number >= 0"]),
    "NaN cost": (with_alpha_row(0, mean_cost=float("nan")), ["line 1", "'mean_cost' is nan"]),
    "infinite cost": (with_alpha_row(1, mean_cost=float("inf")), ["line 2", "'mean_cost' is inf"]),
    "duplicate id": (GOOD_ALPHA + GOOD_ALPHA[:1], ["line 4", "field 'id'", "duplicate instance id 'django__django-1'"]),
    "truncated": ("".join(json.dumps(r) + "\n" for r in GOOD_ALPHA)[:-12], ["line 3", "not valid JSON", "truncated"]),
}


@pytest.mark.parametrize("case", JSONL_CASES)
def test_bad_jsonl_file(case: str, tmp_path: Path) -> None:
    rows, expected = JSONL_CASES[case]
    path = write_jsonl(tmp_path, "alpha", rows)
    write_jsonl(tmp_path, "beta", GOOD_BETA)
    with pytest.raises(DataError) as error:
        load_market(tmp_path, ["alpha", "beta"])
    message = str(error.value)
    assert message.startswith(f"{path}, line ") or message.startswith(f"{path}:")
    for part in expected:
        assert part in message


def test_unreadable_jsonl_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path, "beta", GOOD_BETA)
    (tmp_path / "alpha.jsonl").write_bytes(b'{"id": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"alpha\.jsonl: cannot read the file"):
        load_market(tmp_path, ["alpha", "beta"])
    (tmp_path / "alpha.jsonl").unlink()
    (tmp_path / "alpha.jsonl").mkdir()
    with pytest.raises(DataError, match=r"alpha\.jsonl: cannot read the file"):
        load_market(tmp_path, ["alpha", "beta"])


def test_jsonl_no_shared_instances(tmp_path: Path) -> None:
    write_jsonl(tmp_path, "alpha", GOOD_ALPHA[:2])
    write_jsonl(tmp_path, "beta", GOOD_BETA[3:])
    with pytest.raises(DataError, match="no instances are shared by the providers alpha, beta"):
        load_market(tmp_path)


def test_jsonl_cost_units_differ(tmp_path: Path) -> None:
    write_jsonl(tmp_path, "alpha", [dict(r, cost_unit="USD") for r in GOOD_ALPHA])
    write_jsonl(tmp_path, "beta", [dict(r, cost_unit="compute") for r in GOOD_BETA])
    with pytest.raises(DataError, match=r"cost units differ .*alpha in USD, beta in compute"):
        load_market(tmp_path)
    assert load_market(tmp_path, ["beta"])[0].unit == "compute"
    assert load_market(tmp_path, unit="tokens")[0].unit == "tokens"


def test_jsonl_unknown_provider_lists_the_known_ones(tmp_path: Path) -> None:
    write_jsonl(tmp_path, "alpha", GOOD_ALPHA)
    write_jsonl(tmp_path, "beta", GOOD_BETA)
    with pytest.raises(DataError, match=r"unknown provider 'gamma' in .*; known providers: alpha, beta"):
        load_market(tmp_path, ["alpha", "gamma"])


def test_jsonl_market_over_shared_instances(tmp_path: Path) -> None:
    write_jsonl(tmp_path, "alpha", GOOD_ALPHA)
    write_jsonl(tmp_path, "beta", GOOD_BETA)
    outcomes, report = load_market(tmp_path, ["beta", "alpha"])
    assert outcomes.providers == ("beta", "alpha")
    assert outcomes.instances.tolist() == ["sympy__sympy-3", "django__django-1", "django__django-2"]
    assert outcomes.n.tolist() == [[4, 2], [1, 3], [2, 1]]
    assert outcomes.s.tolist() == [[1, 2], [1, 2], [0, 0]]
    assert outcomes.cost.tolist() == [[4.0, 2.0], [3.0, 0.5], [3.5, 1.0]]
    assert outcomes.unit == "USD"
    assert outcomes.repositories.tolist() == ["sympy", "django", "django"]
    assert (report.kept, report.dropped) == (3, {"beta": 1, "alpha": 0})
    assert str(report) == "3 shared instances; dropped beta: 1 instance(s) not shared by all providers"


# --- tables: long (one row per attempt) and leaderboard (one row per instance and provider) --------

LONG = [
    {"instance": "i1", "provider": "alpha", "attempt": 1, "solved": 0, "cost": 0.25},
    {"instance": "i1", "provider": "alpha", "attempt": 0, "solved": 1, "cost": 0.75},
    {"instance": "i1", "provider": "alpha", "attempt": 2, "solved": 1, "cost": 0.5},
    {"instance": "i2", "provider": "alpha", "attempt": 0, "solved": 0, "cost": 1.0},
    {"instance": "i1", "provider": "beta", "attempt": 0, "solved": 1, "cost": 2.0},
    {"instance": "i2", "provider": "beta", "attempt": 0, "solved": 1, "cost": 3.0},
    {"instance": "i2", "provider": "beta", "attempt": 1, "solved": 0, "cost": 5.0},
    {"instance": "i3", "provider": "beta", "attempt": 0, "solved": 0, "cost": 1.0},
]
LEADERBOARD = [
    {"instance": "i1", "provider": "alpha", "resolved": 1, "cost": 0.5},
    {"instance": "i2", "provider": "alpha", "resolved": 0, "cost": 0.75},
    {"instance": "i1", "provider": "beta", "resolved": 0, "cost": 2.0},
    {"instance": "i2", "provider": "beta", "resolved": 1, "cost": 2.5},
]


def write_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows to CSV or Parquet (by suffix); a None cell is empty (CSV) or null (Parquet)."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join("" if r[c] is None else str(r[c]) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def changed(rows: list[dict[str, Any]], k: int, **changes: Any) -> list[dict[str, Any]]:
    out = [dict(r) for r in rows]
    out[k].update(changes)
    return out


def without(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    return [{c: v for c, v in r.items() if c != column} for r in rows]


def where(path: Path, k: int) -> str:
    """How an error names data row k (0-based): its line in a CSV file, its row in a Parquet file."""
    return f"{path}, row {k + 1}" if path.suffix == ".parquet" else f"{path}, line {k + 2}"


def at(place: Path | str) -> str:
    """A regex matching `place` literally."""
    return re.escape(str(place))


TABLE_CASES: dict[str, tuple[list[dict[str, Any]], int | None, list[str]]] = {
    # name: (rows, bad row or None for a whole-file error, message parts)
    "long missing field": (without(LONG, "cost"), None, ["missing field 'cost'"]),
    "long solved 2": (changed(LONG, 2, solved=2), 2, ["field 'solved' is", "0, 1, true or false"]),
    "long solved empty": (changed(LONG, 3, solved=None), 3, ["field 'solved' is", "0, 1, true or false"]),
    "long negative cost": (changed(LONG, 1, cost=-1.0), 1, ["field 'cost' is", "-1", "finite number >= 0"]),
    "long NaN cost": (changed(LONG, 4, cost=float("nan")), 4, ["field 'cost' is", "nan"]),
    "long infinite cost": (changed(LONG, 5, cost=float("inf")), 5, ["field 'cost' is", "inf"]),
    "long duplicate attempt": (
        changed(LONG, 2, attempt=1),
        2,
        ["field 'instance'", "duplicate attempt 1 of instance 'i1'", "'alpha'"],
    ),
    "leaderboard missing field": (without(LEADERBOARD, "resolved"), None, ["missing field"]),
    "leaderboard resolved 3": (changed(LEADERBOARD, 1, resolved=3), 1, ["field 'resolved' is", "0, 1, true or false"]),
    "leaderboard resolved empty": (changed(LEADERBOARD, 0, resolved=None), 0, ["field 'resolved' is"]),
    "leaderboard negative cost": (changed(LEADERBOARD, 3, cost=-0.5), 3, ["field 'cost' is", "-0.5"]),
    "leaderboard NaN cost": (changed(LEADERBOARD, 2, cost=float("nan")), 2, ["field 'cost' is", "nan"]),
    "leaderboard infinite cost": (changed(LEADERBOARD, 0, cost=float("inf")), 0, ["field 'cost' is", "inf"]),
    "leaderboard duplicate instance": (
        changed(LEADERBOARD, 1, instance="i1"),
        1,
        ["field 'instance'", "duplicate instance id 'i1'", "'alpha'"],
    ),
}
SUFFIXES = [".csv", ".parquet"]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("case", TABLE_CASES)
def test_bad_table(case: str, suffix: str, tmp_path: Path) -> None:
    rows, bad_row, expected = TABLE_CASES[case]
    path = write_table(tmp_path / f"market{suffix}", rows)
    with pytest.raises(DataError) as error:
        load_market(path)
    message = str(error.value)
    assert message.startswith(f"{path}:" if bad_row is None else f"{where(path, bad_row)}: ")
    for part in expected:
        assert part in message


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("rows", [LONG, LEADERBOARD], ids=["long", "leaderboard"])
def test_table_market_errors(rows: list[dict[str, Any]], suffix: str, tmp_path: Path) -> None:
    path = write_table(tmp_path / f"market{suffix}", rows)
    with pytest.raises(DataError, match=r"unknown provider 'gamma' in .*; known providers: alpha, beta"):
        load_market(path, ["gamma", "alpha"])

    apart = [dict(r, instance=f"{r['instance']}-{r['provider']}") for r in rows]
    path = write_table(tmp_path / f"apart{suffix}", apart)
    with pytest.raises(DataError, match="no instances are shared by the providers alpha, beta"):
        load_market(path)

    units = [dict(r, cost_unit="USD" if r["provider"] == "alpha" else "compute") for r in rows]
    path = write_table(tmp_path / f"units{suffix}", units)
    with pytest.raises(DataError, match=r"cost units differ .*alpha in USD, beta in compute"):
        load_market(path)
    assert load_market(path, ["beta"])[0].unit == "compute"


@pytest.mark.parametrize("rows", [LONG, LEADERBOARD], ids=["long", "leaderboard"])
def test_truncated_or_unreadable_csv(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_table(tmp_path / "market.csv", rows)
    text = path.read_text()
    path.write_text(text[: text.rindex(",") - 1])
    last = len(rows) + 1
    with pytest.raises(DataError, match=rf"^{at(path)}, line {last}: the row has \d fields, .*truncated"):
        load_market(path)
    path.write_text("")
    with pytest.raises(DataError, match=rf"^{at(path)}: no header row; is the file empty or truncated"):
        load_market(path)
    path.write_bytes(text.encode().replace(b"alpha", b"\xffalpha"))
    with pytest.raises(DataError, match=rf"^{at(path)}: cannot read the table"):
        load_market(path)


@pytest.mark.parametrize("rows", [LONG, LEADERBOARD], ids=["long", "leaderboard"])
def test_truncated_or_unreadable_parquet(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_table(tmp_path / "market.parquet", rows)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"^{at(path)}: cannot read the table .*truncated"):
        load_market(path)
    path.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match=rf"^{at(path)}: cannot read the table"):
        load_market(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_long_table_loads(suffix: str, tmp_path: Path) -> None:
    outcomes, report = load_market(write_table(tmp_path / f"long{suffix}", LONG))
    assert outcomes.providers == ("alpha", "beta")
    assert outcomes.instances.tolist() == ["i1", "i2"]
    assert outcomes.n.tolist() == [[3, 1], [1, 2]]
    assert outcomes.s.tolist() == [[2, 1], [0, 1]]
    assert np.allclose(outcomes.cost, [[0.5, 2.0], [1.0, 4.0]])
    assert outcomes.unit == "USD"
    assert outcomes.attempt_sequence(0, 0).tolist() == [True, False, True]  # in attempt order, not row order
    assert outcomes.attempt_sequence(1, 1).tolist() == [True, False]
    assert (report.kept, report.dropped) == (2, {"alpha": 0, "beta": 1})


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_long_table_optional_columns(suffix: str, tmp_path: Path) -> None:
    rows = [dict(r, input_tokens=100, output_tokens=20, cost_unit="compute") for r in LONG]
    outcomes, _ = load_market(write_table(tmp_path / f"long{suffix}", rows), ["beta"])
    assert (outcomes.unit, outcomes.n_instances) == ("compute", 3)
    bad = changed(rows, 6, output_tokens=-5)
    path = write_table(tmp_path / f"bad{suffix}", bad)
    with pytest.raises(DataError, match=rf"^{at(where(path, 6))}: field 'output_tokens' is '?-5'?; it must be an int"):
        load_market(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_leaderboard_loads(suffix: str, tmp_path: Path) -> None:
    outcomes, report = load_market(write_table(tmp_path / f"board{suffix}", LEADERBOARD), ["beta", "alpha"])
    assert outcomes.providers == ("beta", "alpha")
    assert outcomes.n.tolist() == [[1, 1], [1, 1]]
    assert outcomes.s.tolist() == [[0, 1], [1, 0]]
    assert outcomes.cost.tolist() == [[2.0, 0.5], [2.5, 0.75]]
    assert report.kept == 2 and not any(report.dropped.values())


def test_csv_accepts_true_false_and_reports_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "board.csv"
    path.write_text("instance,provider,resolved,cost\ni1,alpha,true,1\n\ni2,alpha,False,2\ni3,alpha,yes,3\n")
    with pytest.raises(DataError, match=rf"^{at(path)}, line 5: field 'resolved' is 'yes'"):
        load_market(path)
    path.write_text("instance,provider,resolved,cost\ni1,alpha,true,1\n\ni2,alpha,False,2\n")
    assert load_market(path)[0].s.tolist() == [[1], [0]]


def test_unknown_path_kinds(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_market(tmp_path / "absent")
    (tmp_path / "market.txt").write_text("x")
    with pytest.raises(DataError, match=r"expected a folder of <provider>\.jsonl files or a \.csv/\.parquet table"):
        load_market(tmp_path / "market.txt")
    with pytest.raises(DataError, match=r"no <provider>\.jsonl files"):
        load_market(tmp_path)


# --- Outcomes: selection and summary --------------------------------------------------------------


@pytest.fixture
def market(tmp_path: Path) -> Any:
    write_jsonl(tmp_path, "alpha", GOOD_ALPHA)
    write_jsonl(tmp_path, "beta", GOOD_BETA)
    return load_market(tmp_path)[0]


def sequences(outcomes: Any) -> dict[tuple[str, str], list[bool]]:
    return {
        (str(i), p): outcomes.attempt_sequence(r, c).tolist()
        for r, i in enumerate(outcomes.instances)
        for c, p in enumerate(outcomes.providers)
    }


def test_select_keeps_attempt_sequences(market: Any) -> None:
    full = sequences(market)
    assert full[("django__django-1", "alpha")] == [True, False, True]
    selections = [
        market.select(providers=["beta"]),
        market.select(providers=["beta", "alpha"]),
        market.select(instances=lambda i: i.startswith("django")),
        market.select(providers=["beta"], instances=["sympy__sympy-3", "django__django-2"]),
        market.select(instances=np.array([False, True, True])),
    ]
    for sub in selections:
        for key, attempts in sequences(sub).items():
            assert attempts == full[key]
        rows = [market.instances.tolist().index(i) for i in sub.instances]
        cols = [market.providers.index(p) for p in sub.providers]
        assert np.array_equal(sub.n, market.n[np.ix_(rows, cols)])
        assert np.array_equal(sub.cost, market.cost[np.ix_(rows, cols)])
        assert sub.repositories.tolist() == [repository_of(str(i)) for i in sub.instances]
    assert selections[1].providers == ("beta", "alpha")
    assert selections[2].instances.tolist() == ["django__django-1", "django__django-2"]
    assert selections[3].instances.tolist() == ["django__django-2", "sympy__sympy-3"]


def test_select_errors(market: Any) -> None:
    with pytest.raises(DataError, match="unknown provider 'gamma'; known providers: alpha, beta"):
        market.select(providers=["gamma"])
    with pytest.raises(DataError, match="unknown instance ids: nope"):
        market.select(instances=["nope"])
    with pytest.raises(DataError, match="keeps no instances"):
        market.select(instances=lambda i: False)
    with pytest.raises(DataError, match="keeps no providers"):
        market.select(providers=[])
    with pytest.raises(DataError, match="needs 3 values"):
        market.select(instances=np.array([True, False]))


def test_outcomes_are_immutable(market: Any) -> None:
    with pytest.raises(ValueError):
        market.n[0, 0] = 5


def test_describe(market: Any) -> None:
    assert market.describe() == [
        {
            "provider": "alpha",
            "instances": 3,
            "attempts": 6,
            "mean_pass_at_1": pytest.approx((2 / 3 + 0 + 1) / 3),
            "mean_cost_per_attempt": pytest.approx(3.5 / 3),
            "cost_unit": "USD",
        },
        {
            "provider": "beta",
            "instances": 3,
            "attempts": 7,
            "mean_pass_at_1": pytest.approx((1 + 0 + 1 / 4) / 3),
            "mean_cost_per_attempt": pytest.approx(10.5 / 3),
            "cost_unit": "USD",
        },
    ]


@pytest.mark.parametrize(
    ("instance", "repository"),
    [
        ("django__django-11087", "django"),
        ("scikit-learn__scikit-learn-10297", "scikit-learn"),
        ("sphinx-doc__sphinx-8035", "sphinx"),
        ("mathd_algebra_246", ""),
    ],
)
def test_repository_of(instance: str, repository: str) -> None:
    assert repository_of(instance) == repository


# --- the CLI on bad input: one message, non-zero exit, no traceback ------------------------------


def bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    write_jsonl(tmp_path / "jsonl", "alpha", with_alpha_row(1, attempts=[]))
    write_jsonl(tmp_path / "jsonl", "beta", GOOD_BETA)
    table = write_table(tmp_path / "board.csv", changed(LEADERBOARD, 2, cost=-1))
    return {
        "bad file": ["--data", str(tmp_path / "jsonl"), "--providers", "alpha,beta"],
        "unknown provider": ["--data", str(tmp_path / "jsonl"), "--providers", "beta,gamma"],
        "empty provider name": ["--data", str(tmp_path / "jsonl"), "--providers", "beta,"],
        "bad table": ["--data", str(table)],
        "missing path": ["--data", str(tmp_path / "absent.csv")],
    }


@pytest.mark.parametrize("case", ["bad file", "unknown provider", "empty provider name", "bad table", "missing path"])
def test_cli_bad_input(case: str, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("describe", *bad_inputs(tmp_path)[case])
    assert result.code != 0
    assert result.err.startswith("error: ") and result.err.count("error:") == 1
    assert "Traceback" not in result.out + result.err


def test_cli_bad_input_in_a_real_process(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("modelarb")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from modelarb.cli import main; main()"]
    done = subprocess.run(
        [*command, "describe", *bad_inputs(tmp_path)["bad file"]], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.count("error:") == 1 and "line 2" in done.stderr and "'attempts' is empty" in done.stderr
