"""`modelarb market revenue|compete|entry|distill` on synthetic markets written to disk, and on the paper's data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.data import load_market
from modelarb.economics import compete, market_arbitrage, revenue

Run = Callable[..., CliResult]


def _write_market(folder: Path, unit: str | None = None, seed: int = 0) -> Path:
    """Four providers on 30 instances: p0 cheap and weak … p3 dear and strong; one JSONL file each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    scale = 1.0 if unit is None else 1e5
    difficulty = rng.uniform(0, 1, size=30)
    for k, (skill, cost) in enumerate([(0.2, 0.002), (0.4, 0.01), (0.6, 0.04), (0.8, 0.2)]):
        lines = []
        for i, hard in enumerate(difficulty):
            attempts = (rng.uniform(size=int(rng.integers(3, 12))) < skill * (1.2 - hard)).astype(int).tolist()
            row = {"id": f"repo__repo-{i}", "mean_cost": cost * scale * rng.uniform(0.5, 1.5), "attempts": attempts}
            if unit is not None:
                row["cost_unit"] = unit
            lines.append(json.dumps(row))
        (folder / f"p{k}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def market_dir(tmp_path: Path) -> Path:
    return _write_market(tmp_path / "market")


def test_revenue_table_and_json(run_cli: Run, market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "revenue.json"
    result = run_cli(
        "market",
        "revenue",
        "--data",
        str(market_dir),
        "-p",
        "p0,p1,p2",
        "--scheme",
        "paper",
        "--levels",
        "0.3:best:40",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    assert "Revenue shares with the arbitrageur" in result.out and "maximum margin" in result.out
    payload = json.loads(out.read_text())
    assert set(payload) == {"arbitrage", "revenue", "segmentation", "instances", "source"}
    shares = payload["revenue"]["shares_with"]
    assert set(shares) == {"p0", "p1", "p2", "arbitrageur"}
    np.testing.assert_allclose(np.sum([shares[p] for p in shares], axis=0), 1.0, atol=1e-9)
    outcomes, _ = load_market(market_dir, ["p0", "p1", "p2"])
    expected = revenue(market_arbitrage(outcomes, np.array(payload["revenue"]["levels"])))
    np.testing.assert_allclose(payload["revenue"]["revenue_change"], expected.revenue_change)
    assert payload["segmentation"]["bands"][0]["provider"] in {"p0", "p1", "p2"}


def test_exact_scheme_revenue(run_cli: Run, market_dir: Path) -> None:
    result = run_cli(
        "market", "revenue", "--data", str(market_dir), "-p", "p0,p2", "--scheme", "exact", "--levels", "0.3:best:20"
    )
    assert result.code == 0, result.err
    assert "scheme exact" in result.out


def test_compute_units_are_never_dollars(run_cli: Run, tmp_path: Path) -> None:
    folder = _write_market(tmp_path / "lean", unit="compute", seed=1)
    for args in (["revenue"], ["compete", "--rival-providers", "p0,p1"]):
        result = run_cli(
            "market", *args, "--data", str(folder), "-p", "p0,p1,p2", "--scheme", "paper", "--levels", "0.3:best:20"
        )
        assert result.code == 0, result.err
        assert "compute" in result.out and "$" not in result.out


def test_compete_paper_race_and_rival(run_cli: Run, market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "race.json"
    common = ["--data", str(market_dir), "-p", "p0,p1,p2,p3", "--scheme", "paper", "--levels", "0.3:best:30"]
    result = run_cli("market", "compete", *common, "--rounds", "5", "--factor", "0.9", "--json", str(out))
    assert result.code == 0, result.err
    race = json.loads(out.read_text())
    assert race["names"] == ["arbitrageur A", "arbitrageur B"] and race["rounds"] == 5
    assert len(race["prices"]) == 6
    ratio = np.array(race["price_ratio"], dtype=float)
    assert np.nanmin(ratio) >= 0.9**5 - 1e-12
    result = run_cli("market", "compete", *common, "--rival-providers", "p2,p3", "--settle", "--json", str(out))
    assert result.code == 0, result.err
    race = json.loads(out.read_text())
    assert race["names"] == ["arbitrageur", "rival"]
    costs = np.array([race["arbitrage_costs"]["arbitrageur"], race["arbitrage_costs"]["rival"]], dtype=float)
    costs = np.where(np.isnan(costs), np.inf, costs)  # JSON null = unreachable
    want = compete(costs, race["market_price"], race["names"], 0.93)
    np.testing.assert_allclose(race["settled_price"], want.settled_price)
    np.testing.assert_allclose(race["prices"][-1], race["settled_price"])


def test_entry(run_cli: Run, market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "entry.json"
    result = run_cli(
        "market",
        "entry",
        "--data",
        str(market_dir),
        "-p",
        "p1,p3",
        "--entrant",
        "p0",
        "--scheme",
        "paper",
        "--levels",
        "0.3:best:30",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    assert "p0 enters" in result.out
    payload = json.loads(out.read_text())
    after = payload["shares_with_arbitrage"]["after"]
    assert set(after) == {"p1", "p3", "p0", "arbitrageur"}
    assert sum(after[p]["average"] for p in after) == pytest.approx(1.0)
    assert payload["shares_with_arbitrage"]["before"]["p0"]["average"] == 0.0


def test_distill(run_cli: Run, market_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "distill.json"
    result = run_cli(
        "market",
        "distill",
        "--data",
        str(market_dir),
        "--teacher",
        "p3",
        "--students",
        "p0,p1,p2",
        "--tokens",
        "1e6,1e7,1e8",
        "--scheme",
        "paper",
        "--max-k",
        "5",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    payload = json.loads(out.read_text())
    assert [s["student"] for s in payload["students"]] == ["p0", "p1", "p2"]
    assert [s["tokens"] for s in payload["students"]] == [1e6, 1e7, 1e8]
    assert len(payload["k"]) == 5 and set(payload["fit"]) == {"intercept", "slope", "r_squared"}
    for student in payload["students"]:
        assert student["max_margin"] == pytest.approx(np.mean(student["margin"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["distill", "--teacher", "p3", "--students", "p0,p1", "--tokens", "1e6"], "one number per student"),
        (["distill", "--teacher", "p3", "--students", "p0", "--tokens", "lots"], "comma-separated positive numbers"),
        (["distill", "--teacher", "p3", "--students", "p3", "--tokens", "1e6"], "named twice"),
        (["entry", "-p", "p0,p1", "--entrant", "p9"], "unknown provider"),
        (["entry", "-p", "p0,p1", "--entrant", "p1"], "named twice"),
        (["compete", "-p", "p0,p1", "--rival-providers", "p0,p1"], "strict subset"),
        (["compete", "-p", "p0,p1", "--factor", "1.5"], "factor"),
        (["revenue", "-p", "p0,p1", "--levels", "0.5-0.7"], "start:stop:count"),
        (["revenue", "-p", "p0,p1", "--levels", "0.5:1.5:10"], "solve rates must lie"),
        (["revenue", "-p", "p0,p1", "--scheme", "fast"], "'fast' is not one of"),
    ],
)
def test_bad_input_is_one_clear_error(run_cli: Run, market_dir: Path, args: list[str], message: str) -> None:
    command, *rest = args
    scheme = [] if "--scheme" in rest else ["--scheme", "paper"]
    result = run_cli("market", command, "--data", str(market_dir), *rest, *scheme)
    assert result.code != 0
    assert message in result.err
    assert "Traceback" not in result.err + result.out


# --- the paper's data ---


@pytest.mark.data
def test_paper_pair_revenue(run_cli: Run, paper_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "pair.json"
    result = run_cli(
        "market",
        "revenue",
        "--data",
        str(paper_data / "swebench"),
        "-p",
        "gpt5mini,deepseek",
        "--scheme",
        "paper",
        "--levels",
        "0.68:best:1000",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    payload = json.loads(out.read_text())["revenue"]
    assert min(payload["revenue_change"]) == pytest.approx(0.589, abs=0.015)
    k = int(np.abs(np.array(payload["levels"]) - 0.75).argmin())
    assert payload["shares_with"]["arbitrageur"][k] == pytest.approx(0.335, abs=0.015)


@pytest.mark.data
def test_paper_distill_reads_the_distill_folder_by_default(
    run_cli: Run, paper_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELARB_DATA", str(paper_data))
    out = tmp_path / "distill.json"
    result = run_cli(
        "market",
        "distill",
        "--teacher",
        "qwen3-coder-480b",
        "--students",
        "1.7b-2816,1.7b-1e",
        "--tokens",
        "1.8e9,5.4e9",
        "--scheme",
        "paper",
        "--json",
        str(out),
    )
    assert result.code == 0, result.err
    margins = [s["max_margin"] for s in json.loads(out.read_text())["students"]]
    assert margins == pytest.approx([0.231, 0.276], abs=0.015)


@pytest.mark.data
def test_paper_lean_market_is_priced_in_compute(run_cli: Run, paper_data: Path) -> None:
    result = run_cli(
        "market",
        "revenue",
        "--data",
        str(paper_data / "lean"),
        "-p",
        "kimina-1.7b,kimina-8b,kimina-72b",
        "--scheme",
        "paper",
        "--levels",
        "0.6:0.9:100",
    )
    assert result.code == 0, result.err
    assert "compute" in result.out and "$" not in result.out
    assert "55.6%" in result.out
