"""`modelarb plan fit|show`: fit a cascade plan for one target and save it; print a saved plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.table import Table

from modelarb.cli import options
from modelarb.cli.arbitrage import LevelsOption, SchemeName, SchemeOption, scheme_of, solve_rate_grid
from modelarb.cli.levels import note_cutoffs
from modelarb.cli.output import console, console_err, fields, mix_shares, money, percent, write_json
from modelarb.errors import AnalysisError

if TYPE_CHECKING:
    from modelarb.core.holdout import CrossValidated
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
FoldsOption = typer.Option(5, "--folds", min=0, help="Folds of the cross-validated margin over instances (0: skip it).")
PlanArgument = typer.Argument(..., help="A plan file written by `modelarb plan fit`.", dir_okay=False)


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
    folds: int = FoldsOption,
) -> None:
    """Fit the cheapest cascade (or mix of two) for --target-solve-rate U or --max-price P; save it.

    Then prints the plan's cross-validated margin (--folds K: fitted on K − 1 folds of the
    instances, served on the held-out one) beside its in-sample margin, and warns when they
    differ by more than 5 points.

    The plan (JSON, versioned by format_version) holds: providers, cascades
    (each {order, caps, weight}), solve_rate, spend_per_task, spend_by_provider,
    market_price, cheapest_provider, margin, cost_unit, scheme, method, target,
    fitted_on {source, instances, fingerprint}, created_at, modelarb_version.
    With --max-price, --levels sets the solve rates searched (default: 1000 up to the best).
    """
    from modelarb.core.plan import fit

    if (target_solve_rate is None) == (max_price is None):
        raise AnalysisError("give exactly one of --target-solve-rate U and --max-price P")
    if levels is not None and max_price is None:
        raise AnalysisError("--levels applies with --max-price only; --target-solve-rate is its own level")
    outcomes = options.market(data, providers, unit)
    chosen = scheme_of(scheme)
    if levels is None:
        note_cutoffs(outcomes, chosen)
    grid: np.ndarray | None = None if levels is None else solve_rate_grid(levels, outcomes, chosen)
    with console_err.status(f"fitting a plan ({chosen} scheme) …"):
        plan = fit(outcomes, target_solve_rate=target_solve_rate, max_price=max_price, scheme=chosen, levels=grid)
    plan.save(output)
    print_plan(plan, f"plan written to {output}")
    if folds:
        print_cross_validation(outcomes, plan.solve_rate, chosen, folds, plan.margin)


def print_cross_validation(
    outcomes: Outcomes, level: float, scheme: Scheme, folds: int, in_sample: float
) -> CrossValidated:
    """The cross-validated margin at `level` beside the in-sample one, and a warning when they differ."""
    from modelarb.core.holdout import cross_validate

    with console_err.status(f"cross-validating over {folds} folds …"):
        checked = cross_validate(outcomes, level, scheme, folds=folds, in_sample=in_sample)
    console.print(f"at u = {level:.4f}: {checked.describe()}", highlight=False)
    warning = checked.warning()
    if warning:
        console_err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return checked


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
    """Print a saved plan: its cascades, expected solve rate and spend, the price it undercuts, its data."""
    from modelarb.core.plan import Plan

    print_plan(Plan.load(path), str(path))


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
