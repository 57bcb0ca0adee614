"""`modelarb plan fit|show`: fit a cascade plan for one target and save it; print a saved plan."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.table import Table

from modelarb.cli import options
from modelarb.cli.arbitrage import (
    LevelsOption,
    SchemeName,
    SchemeOption,
    cascade_label,
    named_cascades,
    scheme_of,
    solve_rate_grid,
)
from modelarb.cli.levels import note_cutoffs
from modelarb.cli.output import console, console_err, fields, mix_shares, money, percent, table, write_json
from modelarb.errors import AnalysisError

if TYPE_CHECKING:
    from modelarb.core.holdout import CrossValidated, Validation
    from modelarb.core.plan import Plan
    from modelarb.core.search import Scheme
    from modelarb.data.outcomes import Outcomes

plan_app = typer.Typer(
    name="plan", help="Fit a cascade plan for a target and save it as JSON; show a saved plan.", no_args_is_help=True
)
OutputOption = typer.Option(
    ..., "--output", "-o", help="Write the plan to this JSON file.", dir_okay=False, callback=options.output_path
)
TargetOption = typer.Option(
    None, "--target-solve-rate", help="Fit the cheapest cascade reaching this solve rate u.", show_default=False
)
MaxPriceOption = typer.Option(
    None,
    "--max-price",
    help="Fit the highest solve rate whose expected cost per task is at most this (in the data's cost unit).",
    show_default=False,
)
PlanArgument = typer.Argument(..., help="A plan file written by `modelarb plan fit`.", dir_okay=False)


RobustOption = typer.Option(
    False,
    "--robust",
    help="Choose the cascade whose cross-validated margin is best, not the in-sample optimum (exact scheme, "
    "--target-solve-rate; see the command's help).",
)
SeedOption = typer.Option(0, "--seed", help="Seed of the folds' shuffle (the same seed, the same folds and plan).")


@plan_app.command("fit")
def fit_plan(
    output: Path = OutputOption,
    target_solve_rate: float | None = TargetOption,
    max_price: float | None = MaxPriceOption,
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    scheme: SchemeName = SchemeOption,
    levels: str | None = LevelsOption,
    unit: str | None = options.UnitOption,
    folds: int = options.FoldsOption,
    robust: bool = RobustOption,
    seed: int = SeedOption,
) -> None:
    """Fit the cheapest cascade (or mix of two) for --target-solve-rate U
    or --max-price P; save it.

    Then prints the plan's cross-validated margin (--folds K: fitted on
    K − 1 folds of the instances, served on the held-out one, against that
    fold's market price at the solve rate reached) beside its in-sample
    margin, and warns when they differ by more than 5 points.

    --robust (with --target-solve-rate, exact scheme): the in-sample optimum
    tunes its caps to these very instances. Instead, candidate fitting
    procedures are scored by K-fold cross-validation: the in-sample optimum;
    and for each provider order the exact search uses within 0.05 of U (at
    most 4, nearest first): exact caps on its first three and first two
    stages, and caps quantised to 16, 6 and 3 log-spaced values per stage
    on as many of its stages as fit 20,000 combinations (coarser caps and
    fewer stages regularise). Each refits its caps on the training folds
    and is served on the held-out one. The best mean cross-validated margin
    wins; its caps are refitted on all instances. The chosen plan's and the
    in-sample optimum's in-sample and cross-validated margins are printed
    and saved in the plan. The folds are a seeded shuffle (--seed), so the
    choice is deterministic. The winner's cross-validated margin is the
    best of several and its orders were read off all instances: it is
    somewhat optimistic, and it varies with the folds (--seed); `plan
    evaluate` on unseen instances is the unbiased check.

    Above the best single provider's solve rate there is no market price
    for a plan to undercut: a target there prints the arbitrageur's cost
    C_A(u) and cascade (it alone can sell there) and writes no plan; above
    the best cascade's solve rate nobody can sell, and it says so.

    The plan (JSON, versioned by format_version) holds: providers,
    cascades (each {order, caps, weight}), solve_rate, spend_per_task,
    spend_by_provider, market_price, cheapest_provider, margin, cost_unit,
    scheme, method, target, fitted_on {source, instances, fingerprint},
    created_at, modelarb_version, attempt_cost, cap_rule, live; with
    --folds K > 0 also cross_validation {rule, label, candidates, chosen,
    in_sample_optimum}, each of the last two {folds, seed, fold_margins,
    fold_solve_rates, mean, low, high, in_sample} (in_sample_optimum is
    null without --robust: the plan is the in-sample optimum).
    With --max-price, --levels sets the solve rates searched (default:
    1000 up to the best).
    """
    if (target_solve_rate is None) == (max_price is None):
        raise AnalysisError("give exactly one of --target-solve-rate U and --max-price P")
    if levels is not None and max_price is None:
        raise AnalysisError("--levels applies with --max-price only; --target-solve-rate is its own level")
    chosen = scheme_of(scheme)
    if robust and (target_solve_rate is None or chosen != "exact" or folds < 2):
        raise AnalysisError(
            "--robust fits a --target-solve-rate in the exact scheme and needs --folds of at least 2 "
            "(e.g. --target-solve-rate 0.74 --folds 5)"
        )

    from modelarb.core.search import best_solve_rate

    outcomes = options.market(data, providers, unit)
    options.check_folds(folds, outcomes.n_instances)
    if levels is None:
        note_cutoffs(outcomes, chosen)
    if target_solve_rate is not None and not 0 < target_solve_rate <= 1:
        raise AnalysisError(f"solve rates must lie in (0, 1]; --target-solve-rate is {target_solve_rate:g}")
    if target_solve_rate is not None and target_solve_rate > best_solve_rate(outcomes, "exact"):
        _print_beyond_market(outcomes, target_solve_rate, output)
        return
    if robust:
        assert target_solve_rate is not None
        plan = _robust_plan(outcomes, target_solve_rate, folds, seed)
    else:
        plan = _optimum_plan(outcomes, target_solve_rate, max_price, chosen, levels, folds, seed)
    plan.save(output)
    print_plan(plan, f"plan written to {output}")
    if plan.validation is not None:
        print_validation(plan.validation, plan.solve_rate)


def _optimum_plan(
    outcomes: Outcomes,
    target_solve_rate: float | None,
    max_price: float | None,
    scheme: Scheme,
    levels: str | None,
    folds: int,
    seed: int,
) -> Plan:
    """The in-sample optimum, with its cross-validated margin attached (unless --folds 0)."""
    from modelarb.core.holdout import Validation, cross_validate
    from modelarb.core.plan import fit

    grid: np.ndarray | None = None if levels is None else solve_rate_grid(levels, outcomes, scheme)
    with console_err.status(f"fitting a plan ({scheme} scheme) …"):
        plan = fit(outcomes, target_solve_rate=target_solve_rate, max_price=max_price, scheme=scheme, levels=grid)
    if not folds:
        return plan
    with console_err.status(f"cross-validating over {folds} folds …"):
        checked = cross_validate(outcomes, plan.solve_rate, scheme, folds=folds, seed=seed, in_sample=plan.margin)
    validation = Validation("in-sample optimum", "any order, exact caps" if scheme == "exact" else plan.method,
                            checked, None, 1)  # fmt: skip
    return replace(plan, validation=validation)


def _robust_plan(outcomes: Outcomes, target_solve_rate: float, folds: int, seed: int) -> Plan:
    """`robust_fit`, with the candidates' scores printed."""
    from modelarb.core.robust_fit import robust_fit

    with console_err.status(f"scoring candidate cascades by {folds}-fold cross-validation …"):
        found = robust_fit(outcomes, target_solve_rate, folds=folds, seed=seed)
    rows = []
    for scored in sorted(found.scored, key=lambda s: -s.validated.mean if s.validated else np.inf):
        checked = scored.validated
        mark = " (chosen)" if scored is found.chosen else ""
        if checked is None:
            rows.append([scored.candidate.label + mark, "—", "—", "does not reach u on every training split"])
            continue
        low, high = checked.interval
        rows.append([scored.candidate.label + mark, percent(checked.in_sample), percent(checked.mean),
                     f"{percent(low)} to {percent(high)}"])  # fmt: skip
    table(
        f"Candidates at u = {target_solve_rate:.4f}, scored by {folds}-fold cross-validation (seed {seed})",
        ["candidate", "in-sample", "cross-validated", "95% interval"],
        rows,
    )
    return found.plan


def _print_beyond_market(outcomes: Outcomes, target_solve_rate: float, output: Path) -> None:
    """A target above every single provider: the arbitrageur's cost and cascade there, or why nobody sells."""
    from modelarb.core.beyond import ARBITRAGEUR_ONLY, beyond_market

    with console_err.status("searching cascades above the market (exact curves) …"):
        above = beyond_market(outcomes, np.array([target_solve_rate]))
    assert above.result is not None
    result, unit = above.result, outcomes.unit
    label = cascade_label(result, 0)
    console.print(
        f"u = {target_solve_rate:.4f} lies above the best single provider's solve rate {above.best_single:.4f}: "
        f"{ARBITRAGEUR_ONLY}. The arbitrageur's cost there is C_A(u) = {money(float(result.arbitrage_cost[0]), unit)} "
        f"per task, with cascade {label}:",
        highlight=False,
    )
    for index in named_cascades(result, np.array([0])):
        console.print(f"  #{index + 1} {result.cascades[index].describe(unit)}", highlight=False)
    console.print(
        f"no plan written to {output}: a plan undercuts a market price, and none exists above "
        f"u = {above.best_single:.4f}; cascades reach up to u = {above.best_cascade:.4f}",
        highlight=False,
    )


def print_validation(validation: Validation, level: float) -> None:
    """The plan's cross-validated margin beside its in-sample one (and the in-sample optimum's), and a warning."""
    console.print(f"at u = {level:.4f}: {validation.chosen.describe()}", highlight=False)
    if validation.optimum is not None:
        console.print(f"  chosen: {validation.label} ({validation.rule})", highlight=False)
        console.print(f"  in-sample optimum: {validation.optimum.describe()}", highlight=False)
    _warn(validation.chosen)


def print_cross_validation(
    outcomes: Outcomes, level: float, scheme: Scheme, folds: int, in_sample: float
) -> CrossValidated:
    """The cross-validated margin at `level` beside the in-sample one, and a warning when they differ."""
    from modelarb.core.holdout import cross_validate

    with console_err.status(f"cross-validating over {folds} folds …"):
        checked = cross_validate(outcomes, level, scheme, folds=folds, in_sample=in_sample)
    console.print(f"at u = {level:.4f}: {checked.describe()}", highlight=False)
    _warn(checked)
    return checked


def _warn(checked: CrossValidated) -> None:
    """On stderr, the warning a cross-validation raises (held-out margins far from the in-sample one), if any."""
    warning = checked.warning()
    if warning:
        console_err.print(f"[yellow]warning:[/] {warning}", highlight=False)


@plan_app.command("evaluate")
def evaluate_plan(
    path: Path = PlanArgument,
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    unit: str | None = options.UnitOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """Serve a saved plan on another market (a held-out split, another domain, attempts a broker recorded).

    Scored as in-sample: the solve rate the plan reaches there, its expected spend per task, that
    market's price at the solve rate reached (its cheapest single provider) and the margin, which
    may be negative. JSON keys: plan, source, instances, cost_unit, expected {solve_rate,
    spend_per_task, market_price, margin}, served {solve_rate, spend_per_task, market_price, margin}.
    """
    from modelarb.core.holdout import serve_plan
    from modelarb.core.plan import Plan

    plan = Plan.load(path)
    outcomes = options.market(data, providers, unit)
    if outcomes.unit != plan.cost_unit:
        raise AnalysisError(
            f"the plan is priced in {plan.cost_unit}, the market in {outcomes.unit}; give --unit {plan.cost_unit} "
            "if the market's costs are in that unit"
        )
    served = serve_plan(plan, outcomes)
    unit_ = plan.cost_unit
    out = Table(title=f"{path} served on {outcomes.source} · {outcomes.n_instances} instances", title_justify="left")
    for name in ("", "expected (fitted on " + f"{plan.fitted_on.instances} instances)", "served here"):
        out.add_column(name, justify="left" if not name else "right")
    out.add_row("solve rate", f"{plan.solve_rate:.4f}", f"{served.solve_rate:.4f}")
    out.add_row("spend per task", money(plan.spend, unit_), money(served.spend, unit_))
    out.add_row("market price", money(plan.market_price, unit_), money(served.market_price, unit_))
    out.add_row("margin", percent(plan.margin), percent(served.margin))
    console.print(out, highlight=False)
    expected = {"solve_rate": plan.solve_rate, "spend_per_task": plan.spend, "market_price": plan.market_price,
                "margin": plan.margin}  # fmt: skip
    write_json(json_path, {
        "plan": str(path), "source": outcomes.source, "instances": outcomes.n_instances, "cost_unit": unit_,
        "expected": expected,
        "served": {"solve_rate": served.solve_rate, "spend_per_task": served.spend,
                   "market_price": served.market_price, "margin": served.margin},
    })  # fmt: skip


@plan_app.command("show")
def show_plan(path: Path = PlanArgument) -> None:
    """Print a saved plan: its cascades, expected solve rate and spend, the price it undercuts, its data, and its
    cross-validated margin when it was fitted with --folds."""
    from modelarb.core.plan import Plan

    plan = Plan.load(path)
    print_plan(plan, str(path))
    if plan.validation is not None:
        print_validation(plan.validation, plan.solve_rate)


def print_plan(plan: Plan, title: str) -> None:
    """The plan as a two-column table: what it buys, what it expects, what it was fitted on."""
    unit = plan.cost_unit
    target = (
        f"solve rate {plan.target_solve_rate:.4f}"
        if plan.target_solve_rate is not None
        else f"at most {money(plan.max_price or 0.0, unit)} per task"
    )
    mixed = len(plan.cascades) > 1
    rows: list[list[str]] = [["target", target]]
    two = len(plan.weights) == 2
    shares = mix_shares(plan.weights[1], least=1) if two else tuple(percent(w) for w in plan.weights)
    for k, (cascade, share) in enumerate(zip(plan.cascades, shares, strict=True)):
        tasks = f" ({share} of tasks)" if mixed else ""
        rows.append([f"cascade {k + 1}" if mixed else "cascade", cascade.describe(unit) + tasks])

    def spend(total: float, by_provider: tuple[float, ...]) -> str:
        parts = ", ".join(f"{p} {money(v, unit)}" for p, v in zip(plan.providers, by_provider, strict=True) if v > 0)
        return money(total, unit) + (f" ({parts})" if parts else "")

    live = plan.live
    if plan.cap_rule is None or plan.attempt_cost is None or live is None:
        rule = f"none (plan format {plan.format_version}): refit it with `modelarb plan fit` to serve it live"
        solve_rate, spend_per_task = f"{plan.solve_rate:.4f}", spend(plan.spend, plan.spend_by_provider)
    else:
        estimates = ", ".join(f"{p} {money(a, unit)}" for p, a in zip(plan.providers, plan.attempt_cost, strict=True))
        rule = f"{plan.cap_rule.name}, caps at {plan.cap_rule.caps}s; first-attempt cost estimates: {estimates}"
        solve_rate = f"{plan.solve_rate:.4f} (model) · {live.solve_rate:.4f} (live, under the cap rule)"
        spend_per_task = (
            f"{spend(plan.spend, plan.spend_by_provider)} (model) · "
            f"{spend(live.spend, live.spend_by_provider)} (live, under the cap rule)"
        )
    rows += [
        ["cap rule", rule],
        ["expected solve rate", solve_rate],
        ["expected spend per task", spend_per_task],
        ["market price undercut", f"{money(plan.market_price, unit)} ({plan.cheapest_provider} alone)"],
        ["margin", f"{percent(plan.margin)} (profit {money(plan.profit, unit)} per task)"],
        ["scheme", f"{plan.scheme}: {plan.method}"],
        ["fitted on", f"{plan.fitted_on.source} · {plan.fitted_on.instances} instances"],
        ["data fingerprint", plan.fitted_on.fingerprint],
        ["created", f"{plan.created_at} · modelarb {plan.modelarb_version} · format {plan.format_version}"],
    ]
    fields(title, rows)
