"""Limits and input checked before any work, and the front door: dataset names and $MODELARB_DATA from anywhere."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.cli.levels import MAX_LEVELS, default_levels, parse_levels
from modelarb.core.search import best_solve_rate
from modelarb.data.market import load_market
from modelarb.errors import AnalysisError, ModelarbError
from test_cli_arbitrage import assert_one_error, flat, write_market

Run = Callable[..., CliResult]


@pytest.fixture
def market(tmp_path: Path) -> Path:
    return write_market(tmp_path / "market")


@pytest.mark.parametrize(
    ("levels", "phrases"),
    [
        ("0.3:best:10000000", [f"at most {MAX_LEVELS:,} solve rates", f"0.3:best:{MAX_LEVELS}"]),
        ("0.3:best:1e7", [f"at most {MAX_LEVELS:,} solve rates"]),
        ("0.5:0.3:10", ["start must not exceed stop", "--levels 0.3:0.5:10"]),
        ("0.5:0.3:1e7", ["start must not exceed stop", f"--levels 0.3:0.5:{MAX_LEVELS}"]),  # a hint fixes both
        ("0.3:best:0", ["the grid of solve rates is empty"]),
        ("0.3:nan:10", ["must be finite"]),
    ],
)
def test_levels_refused_at_once(market: Path, run_cli: Run, levels: str, phrases: list[str]) -> None:
    started = time.perf_counter()
    result = run_cli("arbitrage", "--data", str(market), "--levels", levels)
    assert time.perf_counter() - started < 2
    assert_one_error(result, *phrases)


def test_count_may_be_written_in_e_notation(market: Path, run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = run_cli("arbitrage", "--data", str(market), "--levels", "0.05:best:1e2", "--json", str(out))
    assert result.code == 0, result.err
    assert len(json.loads(out.read_text())["levels"]) == 100


def test_hint_for_a_bad_start_is_itself_valid(market: Path, run_cli: Run) -> None:
    result = run_cli("arbitrage", "--data", str(market), "--levels", "-0.1:best:10")
    assert_one_error(result, "solve rates must lie in (0,")
    hint = re.search(r"--levels (\S+)$", flat(result.err))
    assert hint is not None
    assert run_cli("arbitrage", "--data", str(market), "--levels", hint.group(1)).code == 0


def test_empty_unit_refused(market: Path, run_cli: Run) -> None:
    assert_one_error(run_cli("arbitrage", "--data", str(market), "--unit", ""), "--unit is empty")
    assert_one_error(run_cli("describe", "--data", str(market), "--unit", "  "), "--unit is empty")


@pytest.mark.parametrize("command", [["arbitrage"], ["describe"], ["market", "revenue"]])
def test_json_path_checked_before_the_work(market: Path, run_cli: Run, tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nowhere" / "x.json"
    result = run_cli(*command, "--data", str(tmp_path / "no-data"), "--json", str(missing))
    assert_one_error(result, "the folder", "does not exist")  # the output is checked before the data is read
    assert_one_error(run_cli(*command, "--data", str(market), "--json", str(tmp_path)), "directory")


def test_plan_output_checked_before_the_fit(market: Path, run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("plan", "fit", "--data", str(tmp_path / "no-data"), "--target-solve-rate", "0.2",
                     "-o", str(tmp_path / "nowhere" / "plan.json"))  # fmt: skip
    assert_one_error(result, "does not exist")


def test_parse_levels_bounds() -> None:
    assert parse_levels("0.1:best:1e3").count == 1000
    assert parse_levels("0.2:0.2:1").stop == 0.2
    with pytest.raises(AnalysisError, match="is not start:stop:count"):
        parse_levels("0.1:0.2:2.5")


def test_stop_rounded_from_the_best_is_the_best(market: Path, run_cli: Run, tmp_path: Path) -> None:
    from modelarb.data.market import load_market as load

    outcomes, _ = load(market)
    best = best_solve_rate(outcomes, "paper")
    stop = f"{best + 4e-4:.4f}"
    out = tmp_path / "r.json"
    result = run_cli("arbitrage", "--data", str(market), "--scheme", "paper", "--levels", f"0.05:{stop}:20",
                     "--json", str(out))  # fmt: skip
    assert result.code == 0, result.err
    assert "rounded" in flat(result.err)
    assert json.loads(out.read_text())["levels"][-1] == pytest.approx(best)


def one_attempt_market(folder: Path, providers: int = 5, instances: int = 40, seed: int = 1) -> Path:
    """A leaderboard-like market: one attempt per instance and provider."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(providers):
        lines = [
            json.dumps(
                {
                    "id": f"i{i}",
                    "mean_cost": float(rng.uniform(0.01, 1)),
                    "attempts": [int(rng.random() < 0.2 + 0.1 * p)],
                }
            )
            for i in range(instances)
        ]
        (folder / f"m{p}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_default_levels_work_on_one_attempt_markets(tmp_path: Path, run_cli: Run) -> None:
    folder = one_attempt_market(tmp_path / "board")
    outcomes, _ = load_market(folder)
    best = best_solve_rate(outcomes, "exact")
    levels = default_levels(outcomes, best)
    assert 0 < levels[0] < best and levels[-1] == best
    assert levels[0] == pytest.approx((outcomes.s > 0).mean(axis=0).min())
    result = run_cli("arbitrage", "--data", str(folder))
    assert result.code == 0, result.err
    assert "maximum margin" in flat(result.out)


def test_load_market_by_dataset_name_from_anywhere(
    paper_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    outcomes, _ = load_market("computational-arbitrage/swebench", ["gpt5mini", "deepseek"])
    assert outcomes.n_instances > 400 and outcomes.providers == ("gpt5mini", "deepseek")


def test_data_path_honours_modelarb_data(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELARB_DATA", str(tmp_path))
    monkeypatch.setenv("MODELARB_CACHE", str(tmp_path / "empty-cache"))
    result = run_cli("data", "path", "computational-arbitrage")
    assert result.code == 0 and result.out.strip() == str(tmp_path)
    assert_one_error(run_cli("data", "path", "nope"), "unknown dataset 'nope'")


def test_report_folder_checked_before_the_work(run_cli: Run, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    started = time.process_time()
    assert_one_error(run_cli("reproduce", "--data", str(tmp_path / "no-data"), "--out", str(afile)), "is a file")
    result = run_cli("reproduce", "--data", str(tmp_path / "no-data"), "--out", str(afile / "report"))
    assert_one_error(result, "cannot create", "is not a folder you can write to")
    assert time.process_time() - started < 2


def test_dataset_name_without_a_local_copy_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MODELARB_DATA", raising=False)
    monkeypatch.setenv("MODELARB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelarbError, match="modelarb data pull computational-arbitrage"):
        load_market("computational-arbitrage/swebench", ["gpt5mini", "deepseek"])
