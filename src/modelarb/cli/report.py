"""`modelarb report`: a self-contained HTML report for any market (cost curves, margins in and out of sample,
cascades, revenue shares, entry)."""

from __future__ import annotations

from pathlib import Path

import typer

from modelarb import __version__
from modelarb.cli import options
from modelarb.cli.arbitrage import LevelsOption, SchemeName, SchemeOption, scheme_of, solve_rate_grid
from modelarb.cli.output import console, console_err
from modelarb.errors import ModelarbError

DEFAULT_OUT = Path("modelarb-market-report")


OutOption = typer.Option(
    DEFAULT_OUT, "--out", help="Folder to write report.html into (created if needed).", callback=options.output_folder
)
EntrantOption = typer.Option(
    None,
    "--entrant",
    help="One of the providers: also show revenue shares before and after it joins the others.",
    show_default=False,
)


def check_entrant(entrant: str | None, providers: tuple[str, ...] | list[str]) -> None:
    """The entrant must be one of the market's providers, and leave at least one incumbent."""
    if entrant is None:
        return
    if entrant not in providers:
        raise ModelarbError(
            f"--entrant {entrant!r} is not among the providers ({', '.join(providers)}); "
            "name one of them, or add it to --providers"
        )
    if len(providers) < 2:
        raise ModelarbError(f"--entrant {entrant!r} needs at least one other provider to enter a market with")


def report(
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    out: Path = OutOption,
    entrant: str | None = EntrantOption,
    levels: str | None = LevelsOption,
    scheme: SchemeName = SchemeOption,
    folds: int = options.FoldsOption,
    unit: str | None = options.UnitOption,
) -> None:
    """Write a self-contained HTML report of any market to --out/report.html.

    It shows each provider's cost curve C_p(u), the market price and the arbitrage cost
    C_A(u); the margin in sample and cross-validated over --folds folds of the instances
    (95% intervals) at four levels, the largest margin's among them; the chosen cascade at
    each level (providers and caps); revenue shares of the providers and the arbitrageur;
    and, with --entrant, every share before and after the entrant joins the others.
    Levels default as in `modelarb arbitrage`.
    """
    from modelarb.core.search import MAX_GRID_STAGES
    from modelarb.report.market import analyse_market
    from modelarb.report.market_page import report_title, write_market_report

    named = options.provider_list(providers)
    if named is not None:
        check_entrant(entrant, named)
    outcomes = options.market(data, providers, unit)
    check_entrant(entrant, outcomes.providers)
    chosen = scheme_of(scheme)
    options.check_folds(folds, outcomes.n_instances)
    if chosen == "paper" and folds and outcomes.n_providers > MAX_GRID_STAGES:
        raise ModelarbError(
            f"the paper scheme fits cascades over at most {MAX_GRID_STAGES} providers, and cross-validation fits over "
            f"all {outcomes.n_providers}; use --scheme exact, name fewer --providers, or give --folds 0"
        )
    grid = solve_rate_grid(levels, outcomes, chosen)
    entry_grid = None
    if entrant is not None:
        entry_grid = solve_rate_grid(levels, outcomes.select([p for p in outcomes.providers if p != entrant]), chosen)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelarbError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    with console_err.status("analysing the market …") as status:
        analysis = analyse_market(
            outcomes,
            grid,
            chosen,
            folds=folds,
            entrant=entrant,
            entry_levels=entry_grid,
            step=lambda what: status.update(f"{what} …"),
        )
        status.update("drawing the report …")
        run = (
            f"modelarb {__version__} · data {outcomes.source} · {outcomes.n_instances} instances · "
            f"{outcomes.n_providers} providers · costs in {outcomes.unit} · scheme {chosen} · "
            + (f"cross-validation over {folds} folds of the instances" if folds else "no cross-validation")
        )
        path = write_market_report(out, analysis, report_title(analysis), run)
    r = analysis.result
    console.print(f"maximum margin {100 * r.max_margin:.1f}% at u = {r.max_margin_at:.4f} (in sample)", highlight=False)
    check = analysis.check_at(analysis.best)
    if check is not None:
        console.print(f"at u = {check.level:.4f}: {check.cross_validated.describe()}", highlight=False)
        warning = check.cross_validated.warning()
        if warning:
            console_err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"report: {path.resolve()}", highlight=False)
