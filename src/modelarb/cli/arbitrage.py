"""`modelarb arbitrage`: the cheapest cascade at each target solve rate, against the market price."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import typer
from numpy.typing import NDArray
from rich.text import Text

from modelarb.cli import options, search_options
from modelarb.cli.levels import MAX_LEVELS, ROUNDING, default_levels, levels_option, parse_levels, solve_rate_grid
from modelarb.cli.output import console, console_err, mix_shares, money, percent, table, write_json
from modelarb.errors import AnalysisError

if TYPE_CHECKING:  # the analysis layers are imported when a command runs: `--help` stays fast
    from modelarb.core.beyond import BeyondMarket
    from modelarb.core.result import ArbitrageResult
    from modelarb.core.search import Scheme
    from modelarb.data.outcomes import Outcomes

TABLE_ROWS = 15


class SchemeName(StrEnum):
    """`--scheme` choices: the library's schemes."""

    exact = "exact"
    paper = "paper"


SchemeOption = typer.Option(
    SchemeName.exact,
    "--scheme",
    case_sensitive=False,
    help="How to search: exact (exact cost curves and caps, every provider order; METHOD §3–4) or paper "
    "(the paper's budget and cap grids, to reproduce its numbers; METHOD §5).",
)
LevelsOption = typer.Option(
    None,
    "--levels",
    help="Target solve rates u as start:stop:count, e.g. 0.68:0.755:1000, where stop may be `best` (the best "
    f"single provider's solve rate) and count is at most {MAX_LEVELS:,}.",
    show_default="1000 levels from the best mean pass@1 to best; in one-attempt markets, from the weakest "
    "provider's solve rate",
    callback=levels_option,
)


def scheme_of(option: SchemeName) -> Scheme:
    """The library's scheme name for a `--scheme` choice (the choices are the library's schemes)."""
    return cast("Scheme", option.value)


def cascade_label(result: ArbitrageResult, k: int) -> str:
    """`#1`, or `#1 70% + #3 30%` where two cascades are mixed (shares of customers), or `—` where none reaches u."""
    main = int(result.cascade_at[k])
    if main < 0:
        return "—"
    partner = -1 if result.partner_at is None else int(result.partner_at[k])
    if partner < 0 or result.partner_weight is None:
        return f"#{main + 1}"
    first, second = mix_shares(float(result.partner_weight[k]))
    return f"#{main + 1} {first} + #{partner + 1} {second}"


def named_cascades(result: ArbitrageResult, rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Indices of the cascades the shown rows use (main and mixed-in partner)."""
    used = [result.cascade_at[rows]]
    if result.partner_at is not None:
        used.append(result.partner_at[rows])
    every = np.unique(np.concatenate(used))
    return every[every >= 0]


def shown_rows(result: ArbitrageResult, rows: int = TABLE_ROWS) -> NDArray[np.int64]:
    """About `rows` evenly spaced levels, plus the one with the largest margin."""
    return np.array(result.spaced_levels(rows), dtype=np.int64)


def print_result(result: ArbitrageResult, outcomes: Outcomes) -> None:
    """The level table, the cascades it names, then the maximum margin and where it is reached."""
    unit, best = result.cost_unit, int(result.margin.argmax())
    shown = shown_rows(result)
    rows = [
        [
            Text(f"{result.levels[k]:.4f}", style="bold" if k == best else ""),
            money(result.market_price[k], unit),
            money(result.arbitrage_cost[k], unit),
            Text(percent(result.margin[k]), style="bold" if k == best else ""),
            result.providers[int(result.cheapest[k])],
            cascade_label(result, int(k)),
        ]
        for k in shown
    ]
    table(
        f"{', '.join(outcomes.providers)} · {outcomes.n_instances} instances · scheme {result.scheme} · "
        f"{len(shown)} of {len(result.levels)} levels · market price and arbitrage cost per instance in {unit}",
        ["u", "market", "arbitrage", "margin", "cheapest", "cascade"],
        rows,
    )
    for index in named_cascades(result, shown):
        console.print(f"#{index + 1} {result.cascades[index].describe(unit)}", highlight=False)
    console.print(f"search: {result.method}", highlight=False)
    console.print(
        f"maximum margin {percent(result.max_margin)} at u = {result.max_margin_at:.4f}: market price "
        f"{money(result.market_price[best], unit)}, arbitrage cost {money(result.arbitrage_cost[best], unit)}",
        highlight=False,
    )


def arbitrage(
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    scheme: SchemeName = SchemeOption,
    levels: str | None = LevelsOption,
    unit: str | None = options.UnitOption,
    beam_width: int | None = search_options.BeamWidthOption,
    max_depth: int | None = search_options.MaxDepthOption,
    orders: str | None = search_options.OrdersOption,
    cluster: str | None = search_options.ClusterOption,
    workers: int | None = search_options.WorkersOption,
    parts: int | None = search_options.PartsOption,
    folds: int = options.FoldsOption,
    wide: bool = options.WideOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """Find the cheapest cascade at each target solve rate u, and its margin over the market price.

    Prints u, market price C_P(u), arbitrage cost C_q(u), net margin, the
    cheapest single provider and the cascade, for about 15 evenly spaced
    levels and the one with the largest margin; then the maximum margin.

    Above the best single provider's solve rate there is no market price,
    but a cascade may still reach higher (it solves every instance some
    provider solves): there the arbitrageur alone can sell, at its cost
    C_A(u) (exact curves, in both schemes). That range is always reported
    (100 levels); --levels may reach into it; a level above the best
    cascade's solve rate is refused with the reason.

    In the paper scheme a market of more than 5 providers (and no
    --providers) is searched over the 4 providers that are the cheapest
    single provider over the most solve rates, as it says on stderr.

    JSON keys (--json FILE):
    levels, market_price, arbitrage_cost, profit, margin: one value per u;
    max_margin, max_margin_at;
    cascades (list of {providers, caps});
    cascade_at: index into cascades per u (-1: none);
    partner_at, partner_weight: a second cascade mixed in at u, its share;
    provider_costs ({provider: C_p(u)}), cheapest_provider;
    spend_by_provider ({provider: arbitrageur's spend per u});
    providers, cost_unit, scheme, method, instances, source;
    cross_validated {folds, seed, fold_margins, fold_solve_rates, mean, low, high, in_sample}
    at max_margin_at (null with --folds 0);
    above_market {best_single_solve_rate, best_cascade_solve_rate, note,
    levels, arbitrage_cost, cascades, cascade_at, partner_at,
    partner_weight}: C_A(u) where no single provider sells.
    """
    from modelarb.core.beyond import beyond_market
    from modelarb.core.search import search

    chosen = scheme_of(scheme)
    split = search_options.partition(cluster, workers, parts, chosen)
    market = options.market(data, providers, unit)
    options.check_folds(folds, market.n_instances)
    outcomes = grid_market(market, chosen, providers)
    grid, above_levels = split_levels(levels, market, outcomes, chosen)
    exact = replace(search_options.exact_settings(beam_width, max_depth, orders), partition=split)
    with console_err.status(f"searching cascades ({chosen} scheme) …"):
        result = search(
            outcomes,
            grid,
            chosen,
            orders=exact.orders,
            beam_width=exact.beam_width,
            max_depth=exact.max_depth,
            partition=split,
        )
        above = beyond_market(market, above_levels, exact=exact)  # the whole market, even if the grid's is cut
    print_result(result, outcomes)
    print_beyond(above, outcomes.unit)
    checked = None
    if folds and result.max_margin > 0:
        from modelarb.cli.plan import print_cross_validation

        checked = print_cross_validation(outcomes, result.max_margin_at, chosen, folds, result.max_margin)
    write_json(json_path, {**result.to_dict(), "cross_validated": None if checked is None else checked.to_dict(),
                           "above_market": above.to_dict(), "instances": outcomes.n_instances,
                           "source": outcomes.source})  # fmt: skip


def grid_market(outcomes: Outcomes, scheme: Scheme, providers: str | None) -> Outcomes:
    """In the paper scheme, a market of more providers than its cap grid holds and no --providers given: the
    providers cheapest somewhere (`cheapest_somewhere`), said on stderr. Otherwise the market itself."""
    from modelarb.core.grid_providers import cheapest_somewhere
    from modelarb.core.search import MAX_GRID_STAGES, best_solve_rate

    if scheme != "paper" or providers is not None or outcomes.n_providers <= MAX_GRID_STAGES:
        return outcomes
    kept = cheapest_somewhere(outcomes, default_levels(outcomes, best_solve_rate(outcomes, "exact")))
    console_err.print(
        f"paper scheme: its cap grid cannot search {outcomes.n_providers} providers; it searches the {len(kept)} "
        f"cheapest over the most solve rates ({', '.join(kept)}), in that order; --providers chooses others, "
        "--scheme exact searches them all",
        highlight=False,
    )
    return outcomes.select(kept)


def split_levels(
    spec: str | None, market: Outcomes, outcomes: Outcomes, scheme: Scheme
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """`--levels` split at the best single provider's solve rate in `market` (exact, whatever the scheme): the
    levels with a market price, searched over `outcomes` (the market, or the paper grid's cut of it), and those
    above it (None: the default range above the market). Levels above every cascade are refused."""
    from modelarb.core.beyond import best_cascade_solve_rate
    from modelarb.core.search import best_solve_rate

    if spec is None:
        return solve_rate_grid(None, outcomes, scheme), None
    parsed = parse_levels(spec)
    best = best_solve_rate(market, "exact")
    if parsed.stop is None or parsed.stop <= best + ROUNDING:
        return solve_rate_grid(spec, outcomes, scheme), None
    top = best_cascade_solve_rate(market)
    if parsed.stop > top + 1e-9 or parsed.start <= 0:
        start = parsed.start if 0 < parsed.start < best else best / 2
        raise AnalysisError(
            f"--levels {spec!r}: solve rates must lie in (0, {top:.4f}]: the best single provider reaches {best:.4f} "
            f"and the best cascade {top:.4f} (between them the arbitrageur sells alone; above, nobody can); "
            f"end the grid there with e.g. --levels {start:.2g}:best:{parsed.count}"
        )
    every = np.linspace(parsed.start, parsed.stop, parsed.count)
    below, above = every[every <= best], every[every > best]
    if below.size == 0:
        raise AnalysisError(
            f"--levels {spec!r}: every level lies above the best single provider's solve rate {best:.4f}, where no "
            f"market price exists; start the grid at or below it, e.g. --levels {best / 2:.2g}:{parsed.stop:g}:"
            f"{parsed.count}"
        )
    console_err.print(
        f"levels: {above.size} of {every.size} lie above the best single provider's solve rate {best:.4f}; "
        "they are reported as arbitrageur only (no market price)",
        highlight=False,
    )
    return solve_rate_grid(f"{float(below[0])!r}:{float(below[-1])!r}:{below.size}", outcomes, scheme), above


def print_beyond(above: BeyondMarket, unit: str) -> None:
    """What the arbitrageur alone sells above the best single provider (a few levels), or that nobody does."""
    from modelarb.core.beyond import ARBITRAGEUR_ONLY

    console.print(above.message(unit), highlight=False)
    result = above.result
    if result is None or not len(result.levels):
        return
    shown = np.unique(np.linspace(0, len(result.levels) - 1, min(5, len(result.levels))).round().astype(np.int64))
    table(
        f"Above the market ({ARBITRAGEUR_ONLY}) · arbitrage cost per instance in {unit} · exact curves",
        ["u", "market", "arbitrage", "margin", "cascade"],
        [[f"{result.levels[k]:.4f}", "—", money(result.arbitrage_cost[k], unit), "—", cascade_label(result, int(k))]
         for k in shown],
    )  # fmt: skip
    for index in named_cascades(result, shown):
        console.print(f"#{index + 1} {result.cascades[index].describe(unit)}", highlight=False)
