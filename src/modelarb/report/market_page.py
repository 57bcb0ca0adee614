"""report.html for any market: one self-contained page of summary, figures (inline PNG) and tables.

Every number shown in a table cell also sits in the cell's `data-value` attribute at full precision,
and summary rows carry a `data-key`, so the page can be checked against the library.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from modelarb.core.cascade import Cascade
from modelarb.core.result import ArbitrageResult
from modelarb.errors import ModelarbError
from modelarb.report import html, style
from modelarb.report.amounts import amount, level, percent, unit_name
from modelarb.report.figures.market import curves_figure, entry_figure, shares_figure
from modelarb.report.market import MarketAnalysis

PNG_DPI = 110
TABLE_ROWS = 15  # levels in the cascade table
SHARE_COLUMNS = 6  # levels in the revenue-share table
MIX_SHOWN = 5e-4  # a mixed-in cascade with a smaller share of tasks is not shown
EXTRA_STYLE = """
.scroll { overflow-x: auto; }
td.text, th.text { text-align: left; }
tr.best td { font-weight: 600; }
#summary td, #summary th { text-align: left; }
.warning { color: #8a4b00; }
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and the number it shows (None: text only)."""

    text: str
    value: float | None = None
    left: bool = False


Row = Sequence[Cell | str]


def _cell(cell: Cell | str, tag: str = "td") -> str:
    cell = cell if isinstance(cell, Cell) else Cell(cell, left=True)
    attrs = ' class="text"' if cell.left else ""
    if cell.value is not None and math.isfinite(cell.value):
        attrs += f' data-value="{float(cell.value)!r}"'
    return f"<{tag}{attrs}>{escape(cell.text)}</{tag}>"


def table(columns: Sequence[str], rows: Sequence[Row], ident: str, keys: Sequence[str] = (), best: int = -1) -> str:
    """An HTML table; `keys` name its rows (data-key), row `best` is emphasised."""
    left = {k for k, c in enumerate(rows[0] if rows else ()) if not isinstance(c, Cell) or c.left} | {0}
    head = "".join(
        f'<th class="text">{escape(c)}</th>' if k in left else f"<th>{escape(c)}</th>" for k, c in enumerate(columns)
    )
    body = []
    for k, row in enumerate(rows):
        attrs = (f' data-key="{escape(keys[k])}"' if keys else "") + (' class="best"' if k == best else "")
        body.append(f"<tr{attrs}>" + "".join(_cell(c) for c in row) + "</tr>")
    return (
        f'<div class="scroll"><table id="{escape(ident)}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody>\n</table></div>"
    )


def figure_html(fig: Figure, title: str) -> str:
    """A figure as an inline base64 PNG."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=PNG_DPI)
    data = base64.b64encode(png.getvalue()).decode("ascii")
    return f'<img class="figure" src="data:image/png;base64,{data}" alt="{escape(title)}">'


def stages(cascade: Cascade, unit: str) -> str:
    """`a ≤ $0.081 → b ≤ $0.919`, zero-cap stages left out."""
    kept = cascade.active()
    return " → ".join(f"{p} ≤ {amount(c, unit)}" for p, c in zip(kept.providers, kept.caps, strict=True)) or "nothing"


def cascade_text(result: ArbitrageResult, k: int) -> str:
    """The cascade serving level k, or the mix of two with their shares of tasks."""
    main = result.cascade_for(k)
    if main is None:
        return "no cascade reaches u"
    partner = -1 if result.partner_at is None else int(result.partner_at[k])
    weight = 0.0 if partner < 0 or result.partner_weight is None else float(result.partner_weight[k])
    if MIX_SHOWN <= weight <= 1 - MIX_SHOWN:
        other = result.cascades[partner]
        return f"{percent(1 - weight)} of tasks: {stages(main, result.cost_unit)}; {percent(weight)}: " + stages(
            other, result.cost_unit
        )
    return stages(result.cascades[partner] if weight > 1 - MIX_SHOWN else main, result.cost_unit)


def summary(a: MarketAnalysis) -> str:
    """The summary table: the market, the largest margin and where, out of sample, revenue, entry."""
    r, unit, k = a.result, a.unit, a.best
    rows: list[tuple[str, str, Cell]] = [
        ("providers", "providers", Cell(", ".join(r.providers), float(len(r.providers)))),
        ("instances", "instances", Cell(str(a.instances), float(a.instances))),
        ("unit", "cost unit", Cell(unit)),
        ("scheme", "scheme", Cell(f"{r.scheme}: {r.method}")),
        ("levels", "levels", Cell(f"{len(r.levels)} solve rates u from {level(r.levels[0])} to {level(r.levels[-1])}")),
        ("max_margin", "maximum margin (in sample)", Cell(percent(r.max_margin), r.max_margin)),
        ("max_margin_at", "at solve rate", Cell(level(r.max_margin_at), r.max_margin_at)),
        (
            "market_price_at_max",
            "market price there",
            Cell(f"{amount(r.market_price[k], unit)} ({r.providers[int(r.cheapest[k])]} alone)", r.market_price[k]),
        ),
        ("arbitrage_cost_at_max", "arbitrage cost there", Cell(amount(r.arbitrage_cost[k], unit), r.arbitrage_cost[k])),
        ("cascade_at_max", "cascade there", Cell(cascade_text(r, k))),
    ]
    check = a.check_at(k)
    if check is not None:
        cv = check.cross_validated
        low, high = cv.interval
        rows.append(
            (
                "cross_validated_at_max",
                "cross-validated margin there",
                Cell(f"{percent(cv.mean)} (95% interval {percent(low)} to {percent(high)}, {cv.folds} folds)", cv.mean),
            )
        )
    shares = a.revenue.shares_with
    change = a.revenue.revenue_change
    rows += [
        ("arbitrageur_share_at_max", "arbitrageur's revenue share there", Cell(percent(shares[k, -1]), shares[k, -1])),
        (
            "providers_keep_min",
            "providers keep of the market, at worst",
            Cell(percent(float(np.nanmin(change))), float(np.nanmin(change))),
        ),
        (
            "providers_keep_mean",
            "providers keep of the market, on average over u",
            Cell(percent(float(np.nanmean(change))), float(np.nanmean(change))),
        ),
        ("never_cheapest", "never the cheapest provider", Cell(", ".join(a.segmentation.never_cheapest) or "none")),
    ]
    if a.entry is not None:
        e = a.entry
        j = e.providers.index(e.entrant)
        after = float(e.average_with_after[j])
        arb_before, arb_after = float(e.average_with_before[-1]), float(e.average_with_after[-1])
        rows += [
            ("entrant_share", f"{e.entrant}'s average share after entry", Cell(percent(after), after)),
            (
                "arbitrageur_share_entry",
                "arbitrageur's average share before → after entry",
                Cell(f"{percent(arb_before)} → {percent(arb_after)}", arb_after),
            ),
        ]
    keys, labels, cells = zip(*rows, strict=True)
    return table(["", "value"], [[label, cell] for label, cell in zip(labels, cells, strict=True)], "summary", keys)


def margins_section(a: MarketAnalysis) -> str:
    """In-sample against cross-validated margins at the checked levels, with warnings where they differ."""
    r = a.result
    if not a.checks:
        return "<p>Cross-validation was skipped (--folds 0): only in-sample margins are shown.</p>"
    rows, warnings = [], []
    for c in a.checks:
        cv = c.cross_validated
        low, high = cv.interval
        rows.append(
            [
                Cell(level(c.level), c.level),
                Cell(amount(r.market_price[c.index], a.unit), r.market_price[c.index]),
                Cell(percent(cv.in_sample), cv.in_sample),
                Cell(percent(cv.mean), cv.mean),
                Cell(percent(low), low),
                Cell(percent(high), high),
                Cell(f"{100 * cv.gap:+.1f} pts", cv.gap),
            ]
        )
        if cv.warning():
            warnings.append(f"at u = {level(c.level)}: {cv.warning()}")
    best = next((n for n, c in enumerate(a.checks) if c.index == a.best), -1)
    intro = (
        f"<p>The in-sample margin tunes caps to the very instances it is scored on. Out of sample, the instances "
        f"are split into {a.folds} folds (seed {a.checks[0].cross_validated.seed}); a plan fitted on the other "
        f"{a.folds - 1} is served unchanged on each held-out fold, against that fold's own market price. The interval "
        "is a Student t interval over the folds' margins; a negative margin means the plan loses money.</p>"
    )
    notes = "".join(f'<p class="warning">warning: {escape(w)}</p>' for w in warnings)
    columns = ["u", "market price", "in sample", "cross-validated", "95% low", "95% high", "in sample − held out"]
    return intro + table(columns, rows, "margins", best=best) + notes


def cascades_section(a: MarketAnalysis) -> str:
    """The cascade chosen at about TABLE_ROWS levels: providers and caps, prices, margin."""
    r, unit = a.result, a.unit
    shown = r.spaced_levels(TABLE_ROWS)
    rows = [
        [
            Cell(level(r.levels[k]), r.levels[k]),
            Cell(amount(r.market_price[k], unit), r.market_price[k]),
            Cell(r.providers[int(r.cheapest[k])], left=True),
            Cell(amount(r.arbitrage_cost[k], unit), r.arbitrage_cost[k]),
            Cell(percent(r.margin[k]), r.margin[k]),
            Cell(cascade_text(r, k), left=True),
        ]
        for k in shown
    ]
    columns = ["u", "market price", "cheapest provider", "arbitrage cost", "margin", "cascade (provider ≤ cap → …)"]
    return (
        f"<p>Costs and caps per instance in {escape(unit_name(unit))}. A cascade buys attempts from its first provider "
        "until one is verified or the next attempt would pass the cap, then moves on; where two cascades are mixed, "
        f"each serves its share of tasks. {len(shown)} of {len(r.levels)} levels, the largest margin in bold.</p>"
        + table(columns, rows, "cascades", best=shown.index(a.best))
    )


def shares_section(a: MarketAnalysis) -> str:
    """Revenue shares with the arbitrageur, participants by rows, a few levels by columns."""
    e, r = a.revenue, a.result
    columns_at = r.spaced_levels(SHARE_COLUMNS)
    shares = e.shares_with
    names = (*e.providers, "arbitrageur")
    earning = [j for j in range(len(names)) if np.nan_to_num(shares[columns_at, j]).sum() > 0 or j == len(names) - 1]
    rows: list[Row] = [
        [Cell(names[j], left=True), *(Cell(percent(shares[k, j]), shares[k, j]) for k in columns_at)] for j in earning
    ]
    rows.append(
        [
            Cell("market price", left=True),
            *(Cell(amount(e.market_price[k], a.unit), e.market_price[k]) for k in columns_at),
        ]
    )
    rows.append(
        [
            Cell("providers keep", left=True),
            *(Cell(percent(e.revenue_change[k]), e.revenue_change[k]) for k in columns_at),
        ]
    )
    idle = [names[j] for j in range(len(e.providers)) if j not in earning]
    note = f"<p>Earning nothing at these levels: {escape(', '.join(idle))}.</p>" if idle else ""
    return (
        "<p>Without arbitrage the cheapest provider takes every customer at the market price; with it, each provider "
        "earns what the arbitrageur spends on it and the arbitrageur keeps the profit. Shares of the market price "
        "per instance, with the arbitrageur:</p>"
        + table(["participant", *(f"u = {level(r.levels[k])}" for k in columns_at)], rows, "shares")
        + note
    )


def entry_section(a: MarketAnalysis) -> str:
    """Average revenue shares before and after the entrant joins, without and with the arbitrageur."""
    e = a.entry
    assert e is not None, "entry_section needs an analysis with an entrant"
    names = (*e.providers, "arbitrageur")
    averages = (e.average_without_before, e.average_without_after, e.average_with_before, e.average_with_after)
    rows = [
        [
            Cell(name, left=True),
            *(Cell(percent(v[j]), float(v[j])) if j < len(v) else Cell("—") for v in averages),
            Cell(f"{100 * (e.average_with_after[j] - e.average_with_before[j]):+.1f} pts"),
        ]
        for j, name in enumerate(names)
    ]
    columns = ["participant", "no arbitrage: before", "after", "with arbitrage: before", "after", "change"]
    return (
        f"<p>{escape(e.entrant)} joins {escape(', '.join(e.incumbents))}: every participant's revenue share averaged "
        f"over {len(e.levels)} levels u from {level(e.levels[0])} to {level(e.levels[-1])} (the incumbents' reach), "
        "before and after entry.</p>" + table(columns, rows, "entry")
    )


def render(a: MarketAnalysis, title: str, run: str) -> str:
    """The whole page; it loads nothing: figures are inline PNG, the style is inline CSS."""
    parts = [
        (
            "costs",
            "Cost curves, market price and margin",
            lambda: figure_html(curves_figure(a), "cost curves and margin"),
        ),
        ("margins", "Margins in and out of sample", lambda: margins_section(a)),
        ("cascades", "Chosen cascades", lambda: cascades_section(a)),
        ("revenue", "Revenue shares", lambda: figure_html(shares_figure(a), "revenue shares") + shares_section(a)),
    ]
    if a.entry is not None:
        parts.append(
            ("entry", f"Entry of {a.entry.entrant}", lambda: figure_html(entry_figure(a), "entry") + entry_section(a))
        )
    contents = "".join(f'<li><a href="#{key}">{escape(name)}</a></li>' for key, name, _ in parts)
    sections = "\n".join(
        f'<section id="{key}">\n<h2>{escape(name)}</h2>\n{draw()}\n</section>' for key, name, draw in parts
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{html.STYLE}{EXTRA_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{escape(title)}</h1>\n<p class="run">{escape(run)}</p>\n<h2>Summary</h2>\n'
        + summary(a)
        + f"\n<ol>{contents}</ol>\n{sections}\n</body>\n</html>\n"
    )


def write_market_report(folder: Path, analysis: MarketAnalysis, title: str, run: str) -> Path:
    """Write `folder`/report.html (creating the folder) and return its path."""
    page = render(analysis, title, run)
    path = folder / "report.html"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ModelarbError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def report_title(analysis: MarketAnalysis) -> str:
    """The page title: the market's first four providers, and how many more."""
    return f"modelarb: arbitrage in the market of {', '.join(style.name(p) for p in analysis.result.providers[:4])}" + (
        f" and {len(analysis.result.providers) - 4} more" if len(analysis.result.providers) > 4 else ""
    )
