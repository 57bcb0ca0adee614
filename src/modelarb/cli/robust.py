"""`modelarb robust`: learn a pair cascade from a bought fit sample, evaluate it on another domain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from modelarb.cli import options, search_options
from modelarb.cli.output import console, console_err, percent, table, write_json
from modelarb.core.scales import is_paper_data
from modelarb.data.domains import read_domain_map
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError
from modelarb.robust import (
    ACCOUNTINGS,
    EVALUATIONS,
    PAPER_FIT_BUDGETS,
    Accounting,
    Evaluation,
    RobustScheme,
    executor_for,
    run,
)

DEFAULT_BUDGETS = ",".join(f"{budget:g}" for budget in PAPER_FIT_BUDGETS)


def robust(
    data: Path | None = options.DataOption,
    providers: Annotated[
        str | None,
        typer.Option(
            "--providers",
            "-p",
            help="The pair, comma-separated, in cascade order. None or more than two named: the pair is chosen from "
            "them by the data, and printed with the reason: the two providers that are the cheapest single provider "
            "at the most of `arbitrage`'s default solve rates (exact cost curves); if only one ever is, it and the "
            "other provider reaching the highest solve rate; cheapest attempt first (at equal cost, higher pass@1).",
            show_default="chosen from every provider in --data",
        ),
    ] = None,
    unit: str | None = options.UnitOption,
    fit_domain: Annotated[str, typer.Option("--fit-domain", help="Domain the fit sample is bought from.")] = "all",
    eval_domain: Annotated[str, typer.Option("--eval-domain", help="Domain the fitted cascade serves.")] = "all",
    fit_budgets: Annotated[
        str | None,
        typer.Option(
            "--fit-budgets",
            help="Fit budgets, comma-separated, in the data's cost unit.",
            show_default=f"{DEFAULT_BUDGETS} on the paper's data; else multiples of a draw's expected charge "
            "that buy about 10 to 10,000 draws",
        ),
    ] = None,
    bootstraps: Annotated[int, typer.Option("--bootstraps", help="Independent fit samples per fit budget.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed; bootstrap b uses SeedSequence(seed) child b.")] = 0,
    accounting: Annotated[
        str,
        typer.Option(
            "--accounting",
            help="What a draw costs the fit budget: paper (the second provider's sampled cost, as the paper) "
            "or strict (the sum over providers).",
        ),
    ] = "paper",
    domains: Annotated[
        Path | None,
        typer.Option("--domains", help="CSV file naming extra domains (columns instance, domain).", dir_okay=False),
    ] = None,
    cluster: str | None = search_options.ClusterOption,
    executor: Annotated[
        str, typer.Option("--executor", help="Where bootstraps run without --cluster: processes (all cores) or serial.")
    ] = "processes",
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Worker processes for --executor processes.", show_default="all cores"),
    ] = None,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="How the evaluation domain scores the fitted caps: paper (its budget grid) or exact (exact curves). "
            "The fit always uses the sample's curves on the paper's budget grid.",
        ),
    ] = "paper",
    json_path: Path | None = options.JsonOption,
) -> None:
    """Robust arbitrage (METHOD §6): fit a pair cascade's caps on a sample bought with a limited
    fit budget, then measure its margin on the full data of an evaluation domain, per fit budget
    over many bootstraps.

    Domains: all · a repository (e.g. django) · a name from --domains · prefix:<text> · not-<domain>.

    JSON keys (--json):
    providers, pair_choice (why the pair was chosen; null when named), fit_domain, eval_domain, fit_instances,
    eval_instances, accounting, evaluation, seed, bootstraps, cost_unit;
    total_cap, fit_budgets and, per fit budget, mean, p5, p95 (evaluation margin) and mean_draws;
    margins, first_caps (fitted τ_1, null if no draw was bought), draws: (fit budgets × bootstraps).
    """
    if accounting not in ACCOUNTINGS:
        raise AnalysisError(f"--accounting {accounting!r}: use one of {', '.join(ACCOUNTINGS)}")
    if scheme not in EVALUATIONS:
        raise AnalysisError(f"--scheme {scheme!r}: use one of {', '.join(EVALUATIONS)}")
    given = None if fit_budgets is None else options.positive_numbers(fit_budgets, "--fit-budgets", "1,10,100")
    mapping = read_domain_map(domains) if domains is not None else None
    runner = executor_for(executor, cluster, workers, check=True)
    outcomes, reason = _pair_market(data, providers, unit)
    scales = RobustScheme.for_market(outcomes)
    paper = is_paper_data(outcomes)
    if not paper:
        console_err.print(
            f"scales from the market's costs: budget grid {scales.grid.low:.3g} to {scales.grid.high:.3g} "
            f"{outcomes.unit}, total cap {scales.total_cap:.3g}, draws censored at {scales.censor_at:.3g}",
            highlight=False,
        )
    if given is None and outcomes.n_providers == 2:
        given = list(PAPER_FIT_BUDGETS if paper else scales.fit_budgets(outcomes, accounting))
    budgets = list(given or [1.0])  # not a pair: `run` says so
    with Progress(
        TextColumn("bootstraps"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console_err,
        transient=True,
    ) as bar:
        task = bar.add_task("bootstraps", total=bootstraps)
        result = run(
            outcomes,
            fit_domain,
            eval_domain,
            budgets,
            bootstraps,
            seed,
            cast(Accounting, accounting),
            runner,
            mapping=mapping,
            progress=lambda n: bar.advance(task, n),
            evaluation=cast(Evaluation, scheme),
            scheme=scales,
        )
    unit_label = outcomes.unit
    fmt = (lambda v: f"${v:g}") if unit_label == "USD" else (lambda v: f"{v:g} {unit_label}")
    table(
        f"Robust arbitrage {' → '.join(result.providers)} · fit {fit_domain} ({result.fit_instances}) → "
        f"evaluate {eval_domain} ({result.eval_instances}) · {result.bootstraps} bootstraps · {accounting} accounting"
        f" · {scheme} evaluation",
        ["fit budget", "mean draws", "mean margin", "p5", "p95"],
        [
            [fmt(b), f"{d:.0f}", percent(m), percent(lo), percent(hi)]
            for b, d, m, lo, hi in zip(
                result.fit_budgets.tolist(),
                result.draws.mean(axis=1).tolist(),
                result.mean.tolist(),
                result.p5.tolist(),
                result.p95.tolist(),
                strict=True,
            )
        ],
    )
    write_json(json_path, {**result.to_dict(), "pair_choice": reason})


def _pair_market(data: Path | None, providers: str | None, unit: str | None) -> tuple[Outcomes, str | None]:
    """The market of the pair robust arbitrage fits: the named pair as given; else the pair `choose_pair` picks
    from the data, printed with the reason (None when the pair was named), loaded as if named (the instances both
    providers have, not only those every provider has)."""
    from modelarb.cli.levels import default_levels
    from modelarb.core.search import best_solve_rate
    from modelarb.robust.pair import choose_pair

    named = options.provider_list(providers)
    outcomes = options.market(data, providers, unit)
    if outcomes.n_providers < 2 or (named is not None and len(named) == 2):
        return outcomes, None
    choice = choose_pair(outcomes, default_levels(outcomes, best_solve_rate(outcomes, "exact")))
    console.print(f"pair: {' → '.join(choice.providers)} ({choice.reason})", highlight=False)
    return options.market(data, ",".join(choice.providers), unit), choice.reason
