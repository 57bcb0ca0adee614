"""`modelarb report` on markets it has not seen: the numbers on the page are the library's, the page renders in
headless Chromium on its own (no console errors, every figure drawn, nothing fetched), bad input fails first."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult
from modelarb.cli import main
from modelarb.cli.levels import default_levels
from modelarb.core.holdout import cross_validate
from modelarb.core.search import best_solve_rate, search
from modelarb.data import load_market
from modelarb.economics import market_arbitrage, market_entry, revenue
from modelarb.report.amounts import amount
from synthetic_markets import attempts_market, dear_market, leaderboard
from test_readme_analysis import marked
from test_report_browser import CHROMIUM, screenshot

Cells = list[tuple[str, float | None]]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


class Page(HTMLParser):
    """The tables of a report: rows of (text, data-value) cells, by table id; summary rows by data-key."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[Cells]] = {}
        self.keys: dict[str, Cells] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._row: Cells | None = None
        self._cell: list[str] | None = None
        self._value: float | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
            if a.get("data-key"):
                self.keys[str(a["data-key"])] = self._row
        elif tag == "td" and self._row is not None:
            self._cell, self._value = [], float(a["data-value"]) if a.get("data-value") else None
        elif tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(("".join(self._cell).strip(), self._value))
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row is not None:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def value(self, key: str) -> float:
        number = self.keys[key][-1][1]
        assert number is not None, f"summary row {key} shows no number"
        return number

    def text(self, key: str) -> str:
        return self.keys[key][-1][0]


def build(data: Path, out: Path, *args: str) -> Page:
    """Run `modelarb report` in this process; the page it wrote."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["modelarb", "report", "--data", str(data), "--out", str(out), *args])
        with pytest.raises(SystemExit) as done:
            main()
    assert done.value.code in (0, None)
    return Page((out / "report.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def markets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("markets")
    leaderboard(root / "leaderboard", providers=30, instances=40)
    attempts_market(root / "attempts")
    dear_market(root / "dear")
    return root


def check_search(page: Page, data: Path, folds: int) -> None:
    """The page's maximum margin, prices, default levels, cascade rows, cross-validated margin and revenue share
    are what the library computes on the same market (exact scheme, default levels as `modelarb arbitrage`)."""
    outcomes, _ = load_market(data, None)
    levels = default_levels(outcomes, best_solve_rate(outcomes))
    result = search(outcomes, levels)
    k = int(result.margin.argmax())
    assert page.value("max_margin") == pytest.approx(result.max_margin, abs=1e-12)
    assert page.value("max_margin_at") == pytest.approx(result.max_margin_at, abs=1e-12)
    assert page.value("market_price_at_max") == pytest.approx(result.market_price[k], rel=1e-12)
    assert page.value("arbitrage_cost_at_max") == pytest.approx(result.arbitrage_cost[k], rel=1e-12)
    assert page.text("levels") == f"1000 solve rates u from {levels[0]:.4f} to {levels[-1]:.4f}"
    assert page.value("providers") == outcomes.n_providers
    assert all(p in page.text("providers") for p in outcomes.providers)
    margin_at = dict(zip(np.round(levels, 12), result.margin, strict=True))
    rows = page.tables["cascades"]
    assert len(rows) >= 10
    for row in rows:
        assert row[4][1] == pytest.approx(margin_at[round(float(row[0][1] or 0), 12)], abs=1e-12)
    checked = cross_validate(outcomes, result.max_margin_at, folds=folds, in_sample=result.max_margin)
    assert page.value("cross_validated_at_max") == pytest.approx(checked.mean, abs=1e-12)
    assert f"{checked.folds} folds" in page.text("cross_validated_at_max")
    (row,) = [row for row in page.tables["margins"] if row[0][1] == result.max_margin_at]
    assert [cell[1] for cell in row[2:6]] == pytest.approx([result.max_margin, checked.mean, *checked.interval])
    share = revenue(result).shares_with[k, -1]
    assert page.value("arbitrageur_share_at_max") == pytest.approx(share, abs=1e-12)
    assert 0 < result.max_margin <= 1 and 0 <= share <= 1


def check_entry(page: Page, data: Path, entrant: str, providers: list[str] | None = None) -> None:
    """Entry shares on the page are `market_entry`'s on the incumbents' default levels."""
    outcomes, _ = load_market(data, providers)
    incumbents = [p for p in outcomes.providers if p != entrant]
    alone = outcomes.select(incumbents)
    entry = market_entry(outcomes, incumbents, entrant, default_levels(alone, best_solve_rate(alone)), "exact")
    j = entry.providers.index(entrant)
    assert page.value("entrant_share") == pytest.approx(entry.average_with_after[j], abs=1e-12)
    rows = {row[0][0]: row for row in page.tables["entry"]}
    assert set(rows) == {*outcomes.providers, "arbitrageur"}
    for k, name in enumerate((*entry.providers, "arbitrageur")):
        assert rows[name][3][1] == pytest.approx(entry.average_with_before[k], abs=1e-12)
        assert rows[name][4][1] == pytest.approx(entry.average_with_after[k], abs=1e-12)


PAGES = {  # market: its options, and how many figures its page draws
    "leaderboard": (["--folds", "3"], 2),
    "attempts": (["--entrant", "prover-large"], 3),
    "dear": (["--entrant", "agent"], 3),
    "attempts-paper": (["--scheme", "paper"], 2),
}
DATA = {"attempts-paper": "attempts"}  # pages of the same market under other options


@pytest.fixture(scope="module")
def pages(markets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each synthetic market's report, written once by the command with default options but those in PAGES."""
    out = tmp_path_factory.mktemp("reports")
    for name, (args, _) in PAGES.items():
        build(markets / DATA.get(name, name), out / name, *args)
    return {name: out / name / "report.html" for name in PAGES}


def read(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def test_thirty_provider_leaderboard(pages: dict[str, Path], markets: Path) -> None:
    page = read(pages["leaderboard"])
    check_search(page, markets / "leaderboard", folds=3)
    assert page.text("unit") == "USD"
    participants = [row[0][0] for row in page.tables["shares"]]
    assert "arbitrageur" in participants and participants[-2:] == ["market price", "providers keep"]
    html = pages["leaderboard"].read_text(encoding="utf-8")
    assert all(f"model-{p:02d}" in html for p in range(30)), "every provider is named on the page"


def test_attempts_priced_market_prints_attempts_not_dollars(pages: dict[str, Path], markets: Path) -> None:
    page = read(pages["attempts"])
    check_search(page, markets / "attempts", folds=5)
    check_entry(page, markets / "attempts", "prover-large")
    assert page.text("unit") == "attempts"
    price = page.value("market_price_at_max")
    assert page.text("market_price_at_max").startswith(amount(price, "attempts") + " (")
    cells = [cell[0] for table in page.tables.values() for row in table for cell in row]
    assert not any("$" in text for text in cells), "a market priced in attempts shows no dollars"
    assert any(text.endswith(" attempts") for text in cells)
    assert "1 attempt" in " ".join(cells) and not re.search(r"(?<![\d.])1 attempts", " ".join(cells))


def test_ten_dollar_market_reaches_its_dear_provider(pages: dict[str, Path], markets: Path) -> None:
    page = read(pages["dear"])
    check_search(page, markets / "dear", folds=5)
    check_entry(page, markets / "dear", "agent")
    outcomes, _ = load_market(markets / "dear", None)
    reach = float((outcomes.s[:, outcomes.providers.index("agent")] > 0).mean())
    assert page.text("levels").endswith(f"to {reach:.4f}"), "levels run up to the $2–10 provider's full solve rate"
    assert page.text("market_price_at_max").startswith("$")


def test_paper_scheme_on_a_market_priced_in_attempts(pages: dict[str, Path], markets: Path) -> None:
    """The paper scheme's grids come from the market's own costs: its numbers are `market_arbitrage`'s there."""
    page = read(pages["attempts-paper"])
    outcomes, _ = load_market(markets / "attempts", None)
    levels = default_levels(outcomes, best_solve_rate(outcomes, "paper"))
    result = market_arbitrage(outcomes, levels, "paper")
    k = int(result.margin.argmax())
    assert page.value("max_margin") == pytest.approx(result.max_margin, abs=1e-12)
    assert page.value("market_price_at_max") == pytest.approx(result.market_price[k], rel=1e-12)
    assert page.text("scheme").startswith("paper: ")
    exact = search(outcomes, levels[levels <= best_solve_rate(outcomes)])
    assert page.value("market_price_at_max") <= 1.05 * float(exact.market_price.max()), "a price the market can pay"


@pytest.mark.data
def test_readme_report_block_on_the_paper_pair(paper_data: Path, tmp_path: Path) -> None:
    """The README's report block runs as written; the pair's page agrees with the library (exact: 63.0 %)."""
    script = marked("report-example")
    assert "modelarb report" in script
    env = {**os.environ, "MODELARB_DATA": str(paper_data), "COLUMNS": "120"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    page = Page((tmp_path / "pair-report" / "report.html").read_text(encoding="utf-8"))
    pair = paper_data / "swebench"
    outcomes, _ = load_market(pair, ["gpt5mini", "deepseek"])
    pair_result = search(outcomes, default_levels(outcomes, best_solve_rate(outcomes)))
    assert page.value("max_margin") == pytest.approx(pair_result.max_margin, abs=1e-12)
    assert round(page.value("max_margin"), 3) == 0.630
    checked = cross_validate(outcomes, pair_result.max_margin_at, folds=3, in_sample=pair_result.max_margin)
    assert page.value("cross_validated_at_max") == pytest.approx(checked.mean, abs=1e-12)
    check_entry(page, pair, "deepseek", ["gpt5mini", "deepseek"])
    assert "cross-validated margin" in done.stdout


BAD_INPUT = {
    "unknown provider": (["--providers", "prover-small,nope"], "unknown provider 'nope'"),
    "out is a file": (["--out", "{file}"], "is a file; name a folder"),
    "out under a file": (["--out", "{file}/report"], "is not a folder you can write to"),
    "entrant not a provider": (["--entrant", "nobody"], "--entrant 'nobody' is not among the providers"),
    "entrant outside --providers": (["--providers", "prover-small", "--entrant", "prover-large"], "not among"),
    "one fold": (["--folds", "1"], "--folds 1"),
}


@pytest.mark.parametrize("args, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_error_before_any_work(
    run_cli: Callable[..., CliResult], markets: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    file = tmp_path / "taken"
    file.write_text("")
    out = tmp_path / "fresh"
    given = [a.format(file=file) for a in args]
    result = run_cli("report", "--data", str(markets / "attempts"), "--out", str(out), *given)
    err = " ".join(result.err.split())
    assert result.code == 2 and message in err and err.count("error:") == 1, result.err
    assert "Traceback" not in result.err and not result.out
    assert not out.exists(), "nothing is written when the input is bad"


CHECKER = """<script>
window.addEventListener("load", () => {
  const figures = [...document.images];
  document.body.dataset.figures = figures.length;
  document.body.dataset.drawn = figures.filter(i => i.complete && i.naturalWidth > 200 && i.naturalHeight > 200).length;
});
</script>"""


def load_in_chromium(page: Path, folder: Path) -> tuple[str, str, list[str]]:
    """Load a copy of `page` with a figure checker appended: the DOM after load, the console log, and every URL
    the page itself requested over the network (Chromium's own background requests left out)."""
    probe = folder / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECKER + "</body>"), encoding="utf-8")
    net = folder / "net.json"
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={folder / 'profile'}", "--enable-logging=stderr", "--v=0", f"--log-net-log={net}",
        "--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(net.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    requested = [
        e["params"]["url"]
        for e in log["events"]
        if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "file://" in e["params"].get("network_isolation_key", "")
    ]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, "\n".join(console), requested


@needs_chromium
@pytest.mark.parametrize("market", ["leaderboard", "attempts"])  # the $10 page adds no new kind of content
def test_pages_render_offline(pages: dict[str, Path], tmp_path: Path, market: str) -> None:
    page = pages[market]
    dom, console, requested = load_in_chromium(page, tmp_path)
    figures = PAGES[market][1]
    assert f'data-figures="{figures}"' in dom and f'data-drawn="{figures}"' in dom, dom[:300]
    assert not console, console
    assert not requested, requested
    assert "http://" not in page.read_text() and "https://" not in page.read_text()


@needs_chromium
def test_the_many_provider_page_shows_ink(pages: dict[str, Path], tmp_path: Path) -> None:
    pixels = screenshot(pages["leaderboard"], tmp_path)
    rgb = np.round(pixels[..., :3] * 255).astype(np.int64)
    ink = (rgb.sum(axis=-1) < 600).mean()
    assert 0.01 < ink < 0.6, f"{ink:.1%} of the page is ink"


@needs_chromium
def test_the_network_check_sees_a_fetch(pages: dict[str, Path], tmp_path: Path) -> None:
    """The offline check is not vacuous: a page that fetches an image is caught."""
    fetching = tmp_path / "fetching.html"
    html = pages["attempts"].read_text(encoding="utf-8")
    fetching.write_text(html.replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>'), encoding="utf-8")
    _, _, requested = load_in_chromium(fetching, tmp_path)
    assert requested == ["http://127.0.0.1:9/x.png"]
