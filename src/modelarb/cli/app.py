"""The root typer app; each command group lives in its own module."""

from __future__ import annotations

from pathlib import Path

import typer

from modelarb import __version__
from modelarb.cli import options
from modelarb.cli.arbitrage import arbitrage
from modelarb.cli.data import data_app
from modelarb.cli.ledger import ledger_app
from modelarb.cli.market import market_app
from modelarb.cli.output import console, money, table, write_json
from modelarb.cli.plan import plan_app
from modelarb.cli.replay import replay_app
from modelarb.cli.report import report
from modelarb.cli.reproduce import reproduce
from modelarb.cli.robust import robust
from modelarb.cli.serve import db_app, keys_app, serve

app = typer.Typer(
    name="modelarb",
    help="Computational arbitrage in AI model markets: analyse markets of recorded attempts, "
    "find cheap verified cascades, reproduce the paper.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app)
app.add_typer(market_app)
app.command()(arbitrage)
app.add_typer(plan_app)
app.command()(reproduce)
app.command()(robust)
app.command()(report)
app.command()(serve)
app.add_typer(db_app)
app.add_typer(keys_app)
app.add_typer(ledger_app)
app.add_typer(replay_app)


def _version(value: bool) -> None:
    if value:
        console.print(f"modelarb {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """modelarb: computational arbitrage in AI model markets."""


@app.command()
def describe(
    data: Path | None = options.DataOption,
    providers: str | None = options.ProvidersOption,
    unit: str | None = options.UnitOption,
    wide: bool = options.WideOption,
    json_path: Path | None = options.JsonOption,
) -> None:
    """Summarise a market per provider: instances, attempts, mean pass@1, mean cost per attempt.

    JSON keys: providers (list of {provider, instances, attempts, mean_pass_at_1,
    mean_cost_per_attempt, cost_unit}), instances, cost_unit, source.
    """
    outcomes = options.market(data, providers, unit)
    rows = outcomes.describe()
    table(
        f"{outcomes.n_instances} shared instances · costs in {outcomes.unit}",
        ["provider", "instances", "attempts", "mean pass@1", f"mean cost / attempt ({outcomes.unit})"],
        [
            [
                r["provider"],
                r["instances"],
                r["attempts"],
                f"{r['mean_pass_at_1']:.3f}",
                money(r["mean_cost_per_attempt"], outcomes.unit),
            ]
            for r in rows
        ],
    )
    write_json(
        json_path,
        {"providers": rows, "instances": outcomes.n_instances, "cost_unit": outcomes.unit, "source": outcomes.source},
    )
