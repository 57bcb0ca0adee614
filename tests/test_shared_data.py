"""The paper's released data (MODELARB_DATA): every file loads, and the headline numbers come out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult
from modelarb.data import load_jsonl_folder, load_market
from modelarb.data.download import verify
from modelarb.data.registry import COMPUTATIONAL_ARBITRAGE, COMPUTE

pytestmark = pytest.mark.data


def test_local_copy_matches_the_pinned_sums(paper_data: Path) -> None:
    assert verify(COMPUTATIONAL_ARBITRAGE.name, paper_data) == []


@pytest.mark.parametrize("relpath", sorted(COMPUTATIONAL_ARBITRAGE.files))
def test_every_file_loads(relpath: str, paper_data: Path) -> None:
    path = paper_data / relpath
    outcomes, _ = load_jsonl_folder(path.parent, [path.stem])
    assert outcomes.n_instances > 0 and (outcomes.n >= 1).all()
    assert outcomes.unit == (COMPUTE if relpath.startswith("lean/") else "USD")


def test_swebench_describe(paper_data: Path, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    out = tmp_path / "describe.json"
    result = run_cli(
        "describe", "--data", str(paper_data / "swebench"), "--providers", "gpt5mini,deepseek", "--json", str(out)
    )
    assert result.code == 0, result.err
    summary = json.loads(out.read_text())
    assert summary["instances"] == 445 and summary["cost_unit"] == "USD"
    rows = {r["provider"]: r for r in summary["providers"]}
    assert round(rows["gpt5mini"]["mean_pass_at_1"], 3) == 0.553
    assert round(rows["deepseek"]["mean_pass_at_1"], 3) == 0.569
    assert all(r["instances"] == 445 and r["mean_cost_per_attempt"] > 0 for r in rows.values())
    assert "445 shared instances" in result.out and "$" in result.out


def test_data_defaults_to_modelarb_data(
    paper_data: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., CliResult]
) -> None:
    monkeypatch.setenv("MODELARB_DATA", str(paper_data))
    result = run_cli("describe", "--providers", "gpt5mini,deepseek")
    assert result.code == 0 and "445 shared instances" in result.out


def test_lean_market_is_priced_in_compute(paper_data: Path, run_cli: Callable[..., CliResult]) -> None:
    outcomes, report = load_market(paper_data / "lean", ["kimina-1.7b", "kimina-8b", "kimina-72b"])
    assert outcomes.unit == COMPUTE and outcomes.n_instances == report.kept == 244
    result = run_cli("describe", "--data", str(paper_data / "lean"))
    assert result.code == 0, result.err
    assert "compute" in result.out and "$" not in result.out and "USD" not in result.out
