"""Tables fit the terminal and never cut a number or a name: a 24-provider market with long names at 80 and 200
columns, each printed value checked against the command's JSON; help text reflowed and uncut."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer.main
from rich.cells import cell_len

from conftest import CliResult
from modelarb.cli.app import app
from modelarb.cli.help_text import reflow, reflow_help
from modelarb.cli.output import fit_widths, mix_shares, money, percent, split_columns
from modelarb.core.units import with_unit
from synthetic_markets import attempts_market, leaderboard
from test_cli_arbitrage import flat

FAMILIES = ("openai/gpt-5-mini-2025-08-07", "anthropic/claude-sonnet-4-5-20250929",
            "deepseek-ai/DeepSeek-V3.1-Terminus", "qwen/qwen3-coder-480b-a35b-instruct")  # fmt: skip
WIDTHS = (80, 200)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 providers of a one-attempt leaderboard, renamed to long model names (up to 41 characters)."""
    folder = leaderboard(tmp_path_factory.mktemp("many") / "market", providers=24)
    for path in sorted(folder.glob("*.jsonl")):
        k = int(path.stem.split("-")[1])
        path.rename(folder / f"{FAMILIES[k % 4].replace('/', '__')}-v{k}.jsonl")
    return folder


def modelarb(*args: str, columns: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`modelarb ARGS` in a subprocess whose terminal is `columns` wide."""
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run([sys.executable, "-m", "modelarb", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def assert_fits(text: str, columns: int) -> None:
    """Nothing cut with an ellipsis, and no line wider than the terminal."""
    assert "…" not in text
    assert max(cell_len(line) for line in text.splitlines()) <= columns


def row_cells(text: str, label: str) -> list[str]:
    """The cells after `label` in every table row (or header row) it heads, in order (parts of a split table
    joined)."""
    cells: list[str] = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.replace("┃", "│").split("│")]
        if len(parts) > 3 and parts[1] == label:
            cells += parts[2:-1]
    return cells


def shown_levels(levels: list[float], margin: list[float | None]) -> list[int]:
    """The levels the tables show: about 15 evenly spaced ones and the best (as `arbitrage.shown_rows`)."""
    spaced = np.linspace(0, len(levels) - 1, min(15, len(levels))).round().astype(int)
    best = int(np.nanargmax(np.array(margin, dtype=float)))
    return [int(k) for k in np.unique(np.append(spaced, best))]


@pytest.mark.parametrize("columns", WIDTHS)
def test_describe_prints_every_name_in_full(many: Path, tmp_path: Path, columns: int) -> None:
    out = tmp_path / "describe.json"
    done = modelarb("describe", "--data", str(many), "--json", str(out), columns=columns, cwd=tmp_path)
    assert_fits(done.stdout, columns)
    rows = json.loads(out.read_text())["providers"]
    assert len(rows) == 24
    for row in rows:
        assert row_cells(done.stdout, row["provider"]) == [
            str(row["instances"]), str(row["attempts"]), f"{row['mean_pass_at_1']:.3f}",
            money(row["mean_cost_per_attempt"], "USD"),
        ]  # fmt: skip


@pytest.mark.parametrize("columns", WIDTHS)
def test_revenue_shares_of_24_providers_are_all_printed_whole(many: Path, tmp_path: Path, columns: int) -> None:
    out = tmp_path / "revenue.json"
    done = modelarb("market", "revenue", "--data", str(many), "--json", str(out), columns=columns, cwd=tmp_path)
    assert_fits(done.stdout, columns)
    payload = json.loads(out.read_text())
    revenue = payload["revenue"]
    shown = shown_levels(revenue["levels"], payload["arbitrage"]["margin"])
    bands, shares_table = done.stdout.split("Revenue shares with the arbitrageur")
    for band in payload["segmentation"]["bands"]:
        assert row_cells(bands, band["provider"]) == [f"{band['u_low']:.4f}", f"{band['u_high']:.4f}"]
    # one row per provider (the table is transposed), its shares at every level shown
    assert row_cells(shares_table, "u") == [f"{revenue['levels'][k]:.4f}" for k in shown]
    assert row_cells(shares_table, "market price") == [money(revenue["market_price"][k], "USD") for k in shown]
    for name, shares in revenue["shares_with"].items():
        assert row_cells(shares_table, name) == [percent(shares[k]) for k in shown], name


@pytest.mark.parametrize("columns", WIDTHS)
def test_arbitrage_table_cuts_no_number_or_name(many: Path, tmp_path: Path, columns: int) -> None:
    out = tmp_path / "arbitrage.json"
    done = modelarb("arbitrage", "--data", str(many), "--folds", "0", "--json", str(out), columns=columns,
                    cwd=tmp_path)  # fmt: skip
    assert_fits(done.stdout, columns)
    result = json.loads(out.read_text())
    for k in shown_levels(result["levels"], result["margin"]):
        cells = row_cells(done.stdout, f"{result['levels'][k]:.4f}")
        assert cells[:4] == [money(result["market_price"][k], "USD"), money(result["arbitrage_cost"][k], "USD"),
                             percent(result["margin"][k]), result["cheapest_provider"][k]]  # fmt: skip


@pytest.mark.parametrize("columns", WIDTHS)
def test_competition_and_entry_fit(many: Path, tmp_path: Path, columns: int) -> None:
    entrant = f"{FAMILIES[3].replace('/', '__')}-v7"
    for command in (["market", "compete"], ["market", "entry", "--entrant", entrant]):
        done = modelarb(*command, "--data", str(many), columns=columns, cwd=tmp_path)
        assert_fits(done.stdout, columns)
    assert len(row_cells(done.stdout, entrant)) == 5  # before and after, without and with arbitrage, the change


def test_wide_prints_one_table_at_full_width(many: Path, tmp_path: Path) -> None:
    done = modelarb("market", "revenue", "--data", str(many), "--wide", columns=80, cwd=tmp_path)
    assert "…" not in done.stdout and "part 1 of" not in done.stdout
    assert max(cell_len(line) for line in done.stdout.splitlines()) > 80
    assert "anthropic__claude-sonnet-4-5-20250929-v13" in done.stdout


def test_a_market_priced_in_attempts_reads_well(tmp_path: Path) -> None:
    folder = attempts_market(tmp_path / "attempts")
    done = modelarb("arbitrage", "--data", str(folder), "--folds", "0", columns=120, cwd=tmp_path)
    assert_fits(done.stdout, 120)
    assert re.search(r"(?<![\d.])1 attempt\b", done.stdout) and not re.search(r"(?<![\d.])1 attempts", done.stdout)
    assert " 0% " not in done.stdout and "100% +" not in done.stdout  # a partner with no weight is no mix


def test_data_list_names_the_local_copy(run_cli: Callable[..., CliResult], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MODELARB_DATA", str(tmp_path))
    result = run_cli("data", "list")
    assert result.code == 0 and f"local copy in $MODELARB_DATA: {tmp_path}" in flat(result.out)


def test_fit_widths_wraps_only_between_words() -> None:
    assert fit_widths([10, 20], [5, 8], 80) == [10, 20]  # fits as it is
    assert fit_widths([10, 30], [10, 8], 40) == [10, 23]  # the wrappable column gives way
    assert fit_widths([10, 30], [10, 25], 30) is None  # words would be cut: split the table instead
    assert split_columns([6, 40, 40, 7, 7], 80) == [[1], [2, 3, 4]]


@pytest.mark.parametrize(
    ("weight", "shares"),
    [(0.5, ("50%", "50%")), (0.004, ("99.6%", "0.4%")), (0.99996, ("0.004%", "99.996%")), (0.3, ("70%", "30%"))],
)
def test_mix_shares_never_show_zero(weight: float, shares: tuple[str, str]) -> None:
    assert mix_shares(weight) == shares
    assert mix_shares(0.075, least=1) == ("92.5%", "7.5%")


def test_singular_unit() -> None:
    assert with_unit("1", "attempts") == "1 attempt"
    assert with_unit("1.5", "attempts") == "1.5 attempts"
    assert with_unit("1", "USD") == "1 USD" and with_unit("1", "compute") == "1 compute"


def test_help_paragraphs_flow() -> None:
    text = "First line\n    goes on.\n\n    Second\n    paragraph."
    assert reflow(text) == "First line goes on.\n\nSecond paragraph."
    reflow_help(app)
    command = typer.main.get_command(app)
    stack = [command]
    while stack:
        group = stack.pop()
        for sub in getattr(group, "commands", {}).values():
            stack.append(sub)
            help_text = sub.help or ""
            assert "\n" not in help_text.replace("\n\n", ""), sub.name


@pytest.mark.parametrize("command", [[], ["arbitrage"], ["market", "revenue"], ["plan", "fit"], ["robust"], ["serve"],
                                     ["replay", "run"], ["data", "list"]])  # fmt: skip
def test_help_cuts_nothing_at_80_columns(tmp_path: Path, command: list[str]) -> None:
    done = modelarb(*command, "--help", columns=80, cwd=tmp_path)
    assert_fits(done.stdout, 80)


def test_option_help_is_one_style() -> None:
    """Every option's help is a sentence (capital, full stop) and states its default only through [default: …]."""
    stack = [typer.main.get_command(app)]
    while stack:
        command = stack.pop()
        stack += getattr(command, "commands", {}).values()
        for param in command.params:
            text = getattr(param, "help", None) or ""
            assert text[:1].isupper() and text.endswith("."), (command.name, param.name, text)
            assert "(default" not in text and "[default" not in text, (command.name, param.name, text)


@pytest.mark.parametrize("columns", WIDTHS)
def test_plan_show_keeps_paths_names_and_fingerprint_whole(many: Path, tmp_path: Path, columns: int) -> None:
    plan = tmp_path / "plan.json"
    modelarb("plan", "fit", "--data", str(many), "--target-solve-rate", "0.5", "--folds", "0", "-o", str(plan),
             columns=columns, cwd=tmp_path)  # fmt: skip
    done = modelarb("plan", "show", str(plan), columns=columns, cwd=tmp_path)
    assert_fits(done.stdout, columns)
    saved = json.loads(plan.read_text())
    lines = done.stdout.splitlines()
    assert any(saved["fitted_on"]["fingerprint"] in line for line in lines)
    assert any(str(many) in line for line in lines)
    for name in {p for cascade in saved["cascades"] for p in cascade["order"]}:
        assert any(name in line for line in lines), name


@pytest.mark.parametrize("columns", WIDTHS)
def test_paper_pair_revenue_is_whole(paper_data: Path, tmp_path: Path, columns: int) -> None:
    """The finding on the paper's pair market: `market revenue` printed "$0.01…" at 80 columns and "0.5…" at 200."""
    out = tmp_path / "revenue.json"
    done = modelarb("market", "revenue", "--data", str(paper_data / "swebench"), "-p", "gpt5mini,deepseek",
                    "--scheme", "paper", "--json", str(out), columns=columns, cwd=tmp_path)  # fmt: skip
    assert_fits(done.stdout, columns)
    revenue = json.loads(out.read_text())["revenue"]
    shown = shown_levels(revenue["levels"], json.loads(out.read_text())["arbitrage"]["margin"])
    for k in shown:
        cells = row_cells(done.stdout.split("Revenue shares")[1], f"{revenue['levels'][k]:.4f}")
        assert cells[0] == money(revenue["market_price"][k], "USD")
        assert cells[2:4] == [percent(revenue["shares_with"][p][k]) for p in ("gpt5mini", "deepseek")]
