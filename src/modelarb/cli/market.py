"""`modelarb market ...`: revenue shares, price competition, market entry and distillation (METHOD §5.8–5.10, §7)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer

from modelarb.cli import options, search_options
from modelarb.cli.arbitrage import (
    LevelsOption,
    SchemeName,
    SchemeOption,
    grid_market,
    scheme_of,
    shown_rows,
    solve_rate_grid,
)
from modelarb.cli.levels import levels_option, parse_levels
from modelarb.cli.output import console, console_err, money, percent, table, write_json
from modelarb.errors import AnalysisError

if TYPE_CHECKING:  # the economics are imported when a command runs: `--help` stays fast
    from modelarb.core.result import ArbitrageResult
    from modelarb.core.search import ExactSettings, Scheme
    from modelarb.data.outcomes import Outcomes
    from modelarb.economics import CompetitionResult

market_app = typer.Typer(
    name="market",
    help="Market economics: revenue shares, price competition, market entry, distillation.",
    no_args_is_help=True,
)
DistillDataOption = typer.Option(
    None,
    "--data",
    help="Folder of the teacher's and students' .jsonl files.",
    show_default="swebench/distill in $MODELARB_DATA, else in the pulled copy",
)


def _arbitrage(outcomes: Outcomes, levels: np.ndarray, scheme: Scheme, exact: ExactSettings) -> ArbitrageResult:
    from modelarb.economics import market_arbitrage

    with console_err.status(f"searching cascades ({scheme} scheme) …"):
        return market_arbitrage(outcomes, levels, scheme, exact=exact)


@market_app.command("revenue")
def revenue_command(
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
    wide: bool = options.WideOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """Who earns what at each solve rate u, without and with the arbitrageur.

    Prints the bands of u in which each provider is cheapest, then per u the market price,
    the arbitrageur's margin, every provider's revenue share with the arbitrageur and the
    providers' revenue change (what they keep of the market).

    JSON keys: arbitrage (as `modelarb arbitrage`), revenue {levels, providers, cost_unit,
    market_price, revenue_without, revenue_with ({provider: per u}), arbitrageur_profit,
    shares_without, shares_with ({provider or "arbitrageur": per u}), revenue_change,
    arbitraged}, segmentation {providers, bands (list of {provider, u_low, u_high}),
    never_cheapest}, instances, source.
    """
    from modelarb.economics import revenue, segmentation

    chosen = scheme_of(scheme)
    split = search_options.partition(cluster, workers, parts, chosen)
    outcomes = grid_market(options.market(data, providers, unit), chosen, providers)
    exact = search_options.exact_settings(beam_width, max_depth, orders, split)
    result = _arbitrage(outcomes, solve_rate_grid(levels, outcomes, chosen), chosen, exact)
    earned, segments = revenue(result), segmentation(result)
    unit_ = result.cost_unit
    table(
        "Cheapest single provider without arbitrage",
        ["provider", "from u", "to u"],
        [[p, f"{low:.4f}", f"{high:.4f}"] for p, low, high in segments.bands],
    )
    if segments.never_cheapest:
        console.print(f"never cheapest: {', '.join(segments.never_cheapest)}", highlight=False)
    shares = earned.shares_with
    table(
        f"Revenue shares with the arbitrageur · scheme {result.scheme} · prices per instance in {unit_}",
        ["u", "market price", "margin", *result.providers, "arbitrageur", "providers keep"],
        [
            [
                f"{result.levels[k]:.4f}",
                money(result.market_price[k], unit_),
                percent(result.margin[k]),
                *(percent(v) for v in shares[k]),
                percent(earned.revenue_change[k]),
            ]
            for k in shown_rows(result)
        ],
    )
    console.print(f"search: {result.method}", highlight=False)
    low = int(np.nanargmin(earned.revenue_change))
    console.print(
        f"maximum margin {percent(result.max_margin)} at u = {result.max_margin_at:.4f}; providers keep "
        f"{percent(earned.revenue_change[low])} of the market at worst (u = {earned.levels[low]:.4f}), "
        f"{percent(float(np.nanmean(earned.revenue_change)))} on average",
        highlight=False,
    )
    write_json(
        json_path,
        {
            "arbitrage": result.to_dict(),
            "revenue": earned.to_dict(),
            "segmentation": segments.to_dict(),
            "instances": outcomes.n_instances,
            "source": outcomes.source,
        },
    )


@market_app.command("compete")
def compete_command(
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    scheme: SchemeName = SchemeOption,
    levels: str | None = LevelsOption,
    factor: float = typer.Option(0.93, "--factor", help="Each undercut multiplies the price by this (0 < f < 1)."),
    rounds: int = typer.Option(7, "--rounds", help="Rounds of undercutting to show.", min=0),
    settle: bool = typer.Option(False, "--settle", help="Run until nobody can undercut, instead of --rounds."),
    rival: str | None = typer.Option(
        None, "--rival-providers", help="A second arbitrageur that buys only from these providers (comma-separated)."
    ),
    unit: str | None = options.UnitOption,
    beam_width: int | None = search_options.BeamWidthOption,
    max_depth: int | None = search_options.MaxDepthOption,
    orders: str | None = search_options.OrdersOption,
    cluster: str | None = search_options.ClusterOption,
    workers: int | None = search_options.WorkersOption,
    parts: int | None = search_options.PartsOption,
    wide: bool = options.WideOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """Arbitrageurs undercut each other from the market price, round by round.

    Without --rival-providers: two identical arbitrageurs (the paper's race): the price falls
    by --factor per round down to their cost. With it: the full arbitrageur against one with
    fewer providers; the race settles at the second-lowest cost and the cheaper one keeps the gap.
    The exact scheme reads the rival from the arbitrageur's search where that is exact (a proven
    optimum whose cascades use only the rival's providers), else searches the rival's market too
    (at the same time, in a second process, when the arbitrageur's search is a beam search).

    JSON keys: levels, cost_unit, names, factor, rounds, market_price, arbitrage_costs
    ({name: per u}), prices (per round, per u), price_ratio (price / market price),
    settled_price, winner (name per u, null: the providers keep the market), settled_margin,
    instances, source.
    """
    from modelarb.economics import compete, market_and_rival

    chosen = scheme_of(scheme)
    split = search_options.partition(cluster, workers, parts, chosen)
    outcomes = grid_market(options.market(data, providers, unit), chosen, providers)
    grid = solve_rate_grid(levels, outcomes, chosen)
    exact = search_options.exact_settings(beam_width, max_depth, orders, split)
    rival_names = options.provider_list(rival)
    if rival_names is None:
        result = _arbitrage(outcomes, grid, chosen, exact)
        names, costs = ["arbitrageur A", "arbitrageur B"], [result.arbitrage_cost, result.arbitrage_cost]
    else:
        if not set(rival_names) < set(outcomes.providers):
            raise AnalysisError(
                f"--rival-providers must be a strict subset of the market's providers ({', '.join(outcomes.providers)})"
            )
        with console_err.status(f"searching the arbitrageur's and the rival's cascades ({chosen} scheme) …"):
            result, rival_cost = market_and_rival(outcomes, grid, rival_names, chosen, exact)
        names, costs = ["arbitrageur", "rival"], [result.arbitrage_cost, rival_cost]
        console.print(f"rival buys only from {', '.join(rival_names)}", highlight=False)
    race = compete(np.stack(costs), result.market_price, names, factor, None if settle else rounds)
    _print_race(race, result)
    write_json(
        json_path,
        {
            "levels": result.levels,
            "cost_unit": result.cost_unit,
            **race.to_dict(),
            "instances": outcomes.n_instances,
            "source": outcomes.source,
        },
    )


def _print_race(race: CompetitionResult, result: ArbitrageResult) -> None:
    unit = result.cost_unit
    sells = race.winner >= 0
    table(
        f"Undercutting by ×{race.factor:g} per round · {int(sells.sum())} of {len(sells)} levels contested",
        ["round", "mean price / market", "lowest price / market", "winner's mean margin"],
        [
            [
                t,
                f"{np.nanmean(race.price_ratio[t]):.3f}",
                f"{np.nanmin(race.price_ratio[t]):.3f}",
                percent(float(race.margins[t, sells].mean())) if sells.any() else "—",
            ]
            for t in range(race.rounds + 1)
        ],
    )
    table(
        f"Where the race settles · prices per instance in {unit}",
        [
            "u",
            "market price",
            *race.names,
            f"price after {race.rounds} rounds",
            "settled price",
            "served by",
            "settled margin",
        ],
        [
            [
                f"{result.levels[k]:.4f}",
                money(race.market_price[k], unit),
                *(money(c, unit) for c in race.arbitrage_costs[:, k]),
                money(race.prices[-1, k], unit),
                money(race.settled_price[k], unit),
                race.names[race.winner[k]] if race.winner[k] >= 0 else "providers",
                percent(race.settled_margin[k]),
            ]
            for k in shown_rows(result)
        ],
    )


@market_app.command("entry")
def entry_command(
    entrant: str = typer.Option(..., "--entrant", help="The provider that joins the market."),
    data: Path | None = options.DataOption,
    providers: str | None = typer.Option(
        None,
        "--providers",
        "-p",
        help="The incumbents, comma-separated.",
        show_default="every other provider in --data",
    ),
    scheme: SchemeName = SchemeOption,
    levels: str | None = LevelsOption,
    unit: str | None = options.UnitOption,
    beam_width: int | None = search_options.BeamWidthOption,
    max_depth: int | None = search_options.MaxDepthOption,
    orders: str | None = search_options.OrdersOption,
    cluster: str | None = search_options.ClusterOption,
    workers: int | None = search_options.WorkersOption,
    parts: int | None = search_options.PartsOption,
    wide: bool = options.WideOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """A provider enters the market: every incumbent's revenue share before and after, averaged over u.

    --levels must lie within the incumbents' reach (stop may be `best`: the incumbents' best).
    The exact scheme reads the market before entry from the search after it where that is exact (a
    proven optimum in which the entrant serves no level), else searches it too (at the same time, in a
    second process, when the search after entry is a beam search).

    JSON keys: incumbents, entrant, cost_unit, levels, shares_with_arbitrage and
    shares_without_arbitrage, each {before, after: {provider or "arbitrageur": {per_level,
    average}}}, instances, source.
    """
    from modelarb.economics import market_entry

    split = search_options.partition(cluster, workers, parts, scheme_of(scheme))
    incumbents = options.provider_list(providers)
    outcomes = options.market(data, None if incumbents is None else ",".join([*incumbents, entrant]), unit)
    outcomes.provider_index([entrant])
    chosen = scheme_of(scheme)
    if incumbents is None:
        incumbents = _grid_incumbents(outcomes, entrant, chosen)
    grid = solve_rate_grid(levels, outcomes.select(incumbents), chosen)
    with console_err.status(f"searching both markets ({chosen} scheme) …"):
        entry = market_entry(
            outcomes,
            incumbents,
            entrant,
            grid,
            chosen,
            search_options.exact_settings(beam_width, max_depth, orders, split),
        )
    columns = (*entry.providers, "arbitrageur")
    without_before, without_after = entry.average_without_before, entry.average_without_after
    with_before, with_after = entry.average_with_before, entry.average_with_after
    table(
        f"Average revenue shares over {len(grid)} levels u ∈ [{grid.min():.4f}, {grid.max():.4f}] · "
        f"{entrant} enters · scheme {chosen}",
        ["provider", "no arbitrage: before", "after", "with arbitrage: before", "after", "change"],
        [
            [
                name,
                percent(without_before[k]) if k < len(without_before) else "—",
                percent(without_after[k]) if k < len(without_after) else "—",
                percent(with_before[k]),
                percent(with_after[k]),
                f"{100 * (with_after[k] - with_before[k]):+.1f} pts",
            ]
            for k, name in enumerate(columns)
        ],
    )
    write_json(json_path, {**entry.to_dict(), "instances": outcomes.n_instances, "source": outcomes.source})


def _grid_incumbents(outcomes: Outcomes, entrant: str, scheme: Scheme) -> list[str]:
    """Every provider but the entrant; in the paper scheme, when the market after entry is more than its cap grid
    holds, the incumbents cheapest at the most levels (`cheapest_somewhere`, one fewer than the grid searches so
    the entrant fits), said on stderr."""
    from modelarb.cli.levels import default_levels
    from modelarb.core.grid_providers import GRID_PROVIDERS, cheapest_somewhere
    from modelarb.core.search import MAX_GRID_STAGES, best_solve_rate

    others = [p for p in outcomes.providers if p != entrant]
    if scheme != "paper" or len(others) < MAX_GRID_STAGES:
        return others
    market = outcomes.select(others)
    kept = cheapest_somewhere(market, default_levels(market, best_solve_rate(market, "exact")), GRID_PROVIDERS - 1)
    console_err.print(
        f"paper scheme: its cap grid cannot search {len(others) + 1} providers; the incumbents are the "
        f"{len(kept)} cheapest over the most solve rates ({', '.join(kept)}), in that order; --providers chooses "
        "others, --scheme exact searches them all",
        highlight=False,
    )
    return kept


@market_app.command("distill")
def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="The teacher model (provider name)."),
    students: str = typer.Option(..., "--students", help="Student checkpoints, comma-separated."),
    tokens: str = typer.Option(
        ..., "--tokens", help="Distillation tokens (or examples) of each student, e.g. 70e6,2e8,6e8,1.8e9,5.4e9."
    ),
    data: Path | None = DistillDataOption,
    scheme: SchemeName = SchemeOption,
    max_k: int = typer.Option(100, "--max-k", help="Compute pass@k curves for k = 1..K.", min=1),
    levels: str | None = typer.Option(
        None,
        "--levels",
        help="Solve rates of each pair's margin as start:stop:count; stop may be `best` (the pair's best solve rate).",
        show_default="on the paper's data the paper's levels (the top 0.1 below the best, or Lean's [0.7, 0.9]); "
        "else 100 levels from the pair's best mean pass@1 to its best",
        callback=levels_option,
    ),
    unit: str | None = options.UnitOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """Pair each student checkpoint with its teacher: the arbitrageur's margin against distillation data.

    Per student: the margin averaged over the pair's levels (--levels; by default on the paper's
    data the top 0.1 of solve rates, Lean u ∈ [0.7, 0.9], as METHOD §5.10; on other data from the
    pair's best mean pass@1 to its best solve rate) at the best caps, and the teacher's revenue
    kept; then a fit margin = a + b·log10(tokens).

    JSON keys: teacher, cost_unit, scheme, students (list of {student, tokens, max_margin,
    cascade, levels, margin, pass_at_k, teacher_revenue {alone, without_arbitrage,
    with_arbitrage}, teacher_revenue_ratio}), k, teacher_pass_at_k, fit {intercept, slope,
    r_squared}, instances, source.
    """
    from modelarb.economics.distillation import LevelBand, distillation

    band = None if levels is None else LevelBand(*_band(levels))
    names = options.provider_list(students) or []
    counts = options.positive_numbers(tokens, "--tokens", "70e6,2e8,6e8")
    if len(counts) != len(names):
        raise AnalysisError(f"--tokens needs one number per student: {len(names)} student(s), {len(counts)} number(s)")
    outcomes = options.market(data, ",".join([*names, teacher]), unit, domain="swebench/distill")
    chosen = scheme_of(scheme)
    with console_err.status(f"searching {len(names)} student–teacher pairs ({chosen} scheme) …"):
        result = distillation(outcomes, teacher, names, counts, chosen, max_k, band)
    table(
        f"Distillation from {teacher} · {outcomes.n_instances} instances · scheme {chosen} · "
        f"costs in {result.cost_unit} · margin averaged over {result.levels.shape[1]} levels per pair, u from "
        f"{result.levels[:, 0].min():.4f} to {result.levels[:, -1].max():.4f}",
        ["student", "tokens", "max margin", "cascade (top u)", "teacher keeps"],
        [
            [
                name,
                f"{result.tokens[s]:.3g}",
                percent(result.max_margin[s]),
                cascade.describe(result.cost_unit) if (cascade := result.cascades[s]) else "—",
                percent(result.teacher_revenue_ratio[s]),
            ]
            for s, name in enumerate(result.students)
        ],
    )
    fit = result.fit
    if np.isfinite(fit.slope):
        console.print(
            f"fit: max margin = {100 * fit.intercept:.1f}% + {100 * fit.slope:.1f} pts × log10(tokens), "
            f"r² = {fit.r_squared:.3f}",
            highlight=False,
        )
    write_json(json_path, {**result.to_dict(), "instances": outcomes.n_instances, "source": outcomes.source})


def _band(text: str) -> tuple[float, float | None, int]:
    """start, stop (None: each pair's best) and count of a checked `--levels`."""
    spec = parse_levels(text)
    return spec.start, spec.stop, spec.count
