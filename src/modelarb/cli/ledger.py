"""`modelarb ledger summary|check|export-attempts|export-solutions`: the broker's books, read-only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelarb.cli import options
from modelarb.cli.output import console, console_err, money, percent, table, write_json
from modelarb.errors import ServiceError

if TYPE_CHECKING:
    from modelarb.service.store.engine import Store

ledger_app = typer.Typer(
    name="ledger",
    help="The broker's books: profit summary, a soundness check, exports of attempts and solutions.",
    no_args_is_help=True,
)
DbOption = typer.Option(
    None, "--db", help="Database URL of the broker.", show_default="$MODELARB_DB, else the broker's SQLite file"
)
OutputOption = typer.Option(..., "--output", "-o", help="Write to this file.", dir_okay=False)


@contextmanager
def _open(url: str | None) -> Iterator[Store]:
    """The database at `url` (default: the broker's), migrated to the current schema."""
    from modelarb.service.store import migrate
    from modelarb.service.store.engine import Store, default_url

    store = Store.open(url or default_url())
    try:
        migrate.upgrade(store.engine)
        yield store
    finally:
        store.close()


def parse_since(text: str | None) -> datetime | None:
    """`2025-01-31` or `2025-01-31T12:00[+02:00]` (UTC when no offset is given); None for None."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ServiceError(f"--since {text!r}: give a date like 2025-01-31 or a time like 2025-01-31T12:00") from None


@ledger_app.command("summary")
def summary_command(
    db: str | None = DbOption,
    since: str | None = typer.Option(None, "--since", help="Count only what happened from this UTC date or time."),
    json_path: Path | None = options.JsonOption,
) -> None:
    """Revenue, provider spend, profit and realised margin; tasks by state; the same per UTC day.

    JSON keys: since, cost_unit, transactions, revenue[_micro], spend[_micro], profit[_micro],
    margin, spend_by_provider {provider: {spend, spend_micro}}, tasks_by_state, days (list of
    {date, revenue[_micro], spend[_micro], profit[_micro], tasks_created}).
    """
    from modelarb.service.reports import summary

    start = parse_since(since)
    with _open(db) as store:
        report = summary(store, start)
    _print_summary(report)
    write_json(json_path, report)


def _print_summary(report: dict[str, Any]) -> None:
    unit = report["cost_unit"]
    margin = report["margin"]
    since = f" since {report['since']}" if report["since"] else ""
    table(
        f"Ledger{since} · {report['transactions']} transactions",
        ["", f"amount ({unit})"],
        [
            ["revenue", money(report["revenue"], unit)],
            ["provider spend", money(report["spend"], unit)],
            ["profit", money(report["profit"], unit)],
            ["realised margin", "—" if margin is None else percent(margin)],
        ],
    )
    if report["spend_by_provider"]:
        table(
            "Spend by provider",
            ["provider", f"spend ({unit})"],
            [[p, money(v["spend"], unit)] for p, v in report["spend_by_provider"].items()],
        )
    if report["tasks_by_state"]:
        table("Tasks by state", ["state", "tasks"], list(report["tasks_by_state"].items()))
    if report["days"]:
        table(
            "Per day (UTC)",
            ["date", "revenue", "spend", "profit", "tasks created"],
            [
                [
                    d["date"],
                    money(d["revenue"], unit),
                    money(d["spend"], unit),
                    money(d["profit"], unit),
                    d["tasks_created"],
                ]
                for d in report["days"]
            ],
        )


@ledger_app.command("check")
def check_command(db: str | None = DbOption) -> None:
    """Check the books: every transaction balances, and tasks, calls and customers agree with the ledger.

    Exits 0 when sound, 1 listing every problem found.
    """
    from modelarb.service.reports import check, counts

    with _open(db) as store:
        problems = check(store)
        sizes = counts(store)
    if problems:
        for problem in problems:
            console_err.print(f"[red]problem:[/] {problem}", highlight=False, soft_wrap=True)
        console_err.print(f"{len(problems)} problem(s) in {sizes['transactions']} transactions, {sizes['tasks']} tasks")
        raise typer.Exit(1)
    console.print(f"ledger balances: {sizes['transactions']} transactions, {sizes['tasks']} tasks")


@ledger_app.command("export-attempts")
def export_attempts_command(output: Path = OutputOption, db: str | None = DbOption) -> None:
    """Write every verified or rejected attempt as a long table (.csv or .parquet) that `--data` reads."""
    from modelarb.service.reports import export_attempts

    with _open(db) as store:
        rows = export_attempts(store, output)
    console_err.print(f"wrote {rows} attempts to {output}")


@ledger_app.command("export-solutions")
def export_solutions_command(output: Path = OutputOption, db: str | None = DbOption) -> None:
    """Write each solved task as one JSON line: its messages plus the verified solution."""
    from modelarb.service.reports import export_solutions

    with _open(db) as store:
        lines = export_solutions(store, output)
    console_err.print(f"wrote {lines} solutions to {output}")
