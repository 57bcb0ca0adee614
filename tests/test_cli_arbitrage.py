"""`modelarb arbitrage`: the pair market's table and JSON, and one clear error for each bad option."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.cli.arbitrage import SchemeName
from modelarb.core.search import SCHEMES

Run = Callable[..., CliResult]
REQUIRED_KEYS = {
    "levels", "market_price", "arbitrage_cost", "margin", "max_margin", "max_margin_at", "cascades", "cost_unit",
    "scheme",
}  # fmt: skip


def write_market(folder: Path, providers: int = 2, instances: int = 12, seed: int = 0) -> Path:
    """A random market in the paper's JSONL layout: providers p0, p1, …, each dearer and stronger than the last."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(providers):
        strength = (p + 1) / (providers + 1)
        lines = []
        for i in range(instances):
            attempts = (rng.random(rng.integers(1, 9)) < strength * rng.random()).astype(int).tolist()
            cost = float(0.005 * (1 + 3 * p) * rng.uniform(0.5, 1.5))
            lines.append(json.dumps({"id": f"repo__repo-{i}", "mean_cost": cost, "attempts": attempts}))
        (folder / f"p{p}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def market(tmp_path: Path) -> Path:
    return write_market(tmp_path / "market")


def flat(text: str) -> str:
    """Console text with line wrapping undone."""
    return " ".join(text.split())


def assert_one_error(result: CliResult, *phrases: str) -> None:
    assert result.code != 0
    assert "Traceback" not in result.err + result.out
    for phrase in phrases:
        assert phrase in flat(result.err)


def test_scheme_choices_are_the_library_schemes() -> None:
    assert tuple(s.value for s in SchemeName) == SCHEMES


@pytest.mark.data
def test_cli_starts_without_the_numerics() -> None:
    """`modelarb --help` loads neither scipy, matplotlib nor dask: what needs them imports them when it runs."""
    probe = (
        "import sys; import modelarb.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'matplotlib', 'dask', 'distributed'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_pair_market_table_and_json(paper_data: Path, tmp_path: Path, run_cli: Run) -> None:
    out = tmp_path / "pair.json"
    result = run_cli(
        "arbitrage", "--data", str(paper_data / "swebench"), "--providers", "gpt5mini,deepseek",
        "--scheme", "paper", "--levels", "0.68:best:1000", "--json", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    out_text = flat(result.out)
    assert "gpt5mini ≤ $0.0812 → deepseek ≤ $0.919" in out_text
    assert "maximum margin 41.1% at u = 0.7549" in out_text
    assert "15 of 1000 levels" in out_text
    payload = json.loads(out.read_text())
    assert payload.keys() >= REQUIRED_KEYS
    assert payload["scheme"] == "paper"
    assert payload["cost_unit"] == "USD"
    assert len(payload["levels"]) == len(payload["margin"]) == len(payload["market_price"]) == 1000
    assert payload["max_margin"] == pytest.approx(0.411, abs=0.01)
    assert payload["max_margin"] == pytest.approx(max(payload["margin"]))
    assert payload["cascades"] == [
        {"providers": ["gpt5mini", "deepseek"], "caps": pytest.approx([0.0812, 0.9188], abs=1e-4)}
    ]


@pytest.mark.data
def test_pair_market_exact_scheme(paper_data: Path, tmp_path: Path, run_cli: Run) -> None:
    out = tmp_path / "exact.json"
    result = run_cli(
        "arbitrage", "--data", str(paper_data / "swebench"), "--providers", "gpt5mini,deepseek",
        "--levels", "0.68:0.755:200", "--json", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    payload = json.loads(out.read_text())
    assert payload["scheme"] == "exact"
    assert 0 < payload["max_margin"] < 1
    assert f"maximum margin {100 * payload['max_margin']:.1f}%" in flat(result.out)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_synthetic_market_json_agrees_with_table(market: Path, tmp_path: Path, run_cli: Run, scheme: str) -> None:
    out = tmp_path / "result.json"
    result = run_cli("arbitrage", "--data", str(market), "--scheme", scheme, "--json", str(out))
    assert result.code == 0, result.err
    payload = json.loads(out.read_text())
    assert payload.keys() >= REQUIRED_KEYS
    assert payload["scheme"] == scheme
    levels = np.array(payload["levels"])
    assert len(levels) == 1000 and np.all(np.diff(levels) > 0)
    margin = np.array(payload["margin"])
    assert np.all((margin >= 0) & (margin < 1))
    text = flat(result.out)
    assert f"maximum margin {100 * payload['max_margin']:.1f}% at u = {payload['max_margin_at']:.4f}" in text
    assert f"scheme {scheme}" in text


def test_short_level_grid_shows_every_level(market: Path, run_cli: Run) -> None:
    result = run_cli("arbitrage", "--data", str(market), "--scheme", "paper", "--levels", "0.2:best:3")
    assert result.code == 0, result.err
    assert "3 of 3 levels" in flat(result.out)


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--providers", "p0,nope"], ["unknown provider 'nope'", "p0, p1"]),
        (["--levels", "0.2:1.5:10"], ["solve rates must lie in (0,", "--levels 0.2:best:10"]),
        (["--levels", "0:0.3:10"], ["solve rates must lie in (0,"]),
        (["--levels", "0.2:0.3:0"], ["the grid of solve rates is empty"]),
        (["--levels", "0.2:0.3"], ["is not start:stop:count"]),
        (["--levels", "a:b:c"], ["is not start:stop:count"]),
        (["--levels", "0.2:0.3:2.5"], ["is not start:stop:count"]),
        (["--levels", "0.2:0.3:-4"], ["the count must be a positive number"]),
        (["--scheme", "fancy"], ["Invalid value for '--scheme'"]),
        (["--providers", "p0,,p1"], ["has an empty name"]),
    ],
)
def test_bad_options_give_one_clear_error(market: Path, run_cli: Run, args: list[str], phrases: list[str]) -> None:
    assert_one_error(run_cli("arbitrage", "--data", str(market), "--scheme", "paper", *args), *phrases)


def test_missing_data_folder(tmp_path: Path, run_cli: Run) -> None:
    assert_one_error(run_cli("arbitrage", "--data", str(tmp_path / "nowhere")), "no such file or folder")


def test_paper_scheme_refuses_more_than_five_providers(tmp_path: Path, run_cli: Run) -> None:
    folder = write_market(tmp_path / "six", providers=6)
    named = ("--providers", "p0,p1,p2,p3,p4,p5")
    assert_one_error(run_cli("arbitrage", "--data", str(folder), "--scheme", "paper", *named), "choose at most 5")
    chosen = run_cli("arbitrage", "--data", str(folder), "--scheme", "paper", "--folds", "0")  # none named: a subset
    assert chosen.code == 0, chosen.err
    assert "its cap grid cannot search 6 providers; it searches the" in flat(chosen.err)
