"""Options of the exact scheme's cascade search (`--beam-width`, `--max-depth`, `--orders`), shared by commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from modelarb.errors import ModelarbError

if TYPE_CHECKING:
    from modelarb.core.search import ExactSettings

BeamWidthOption = typer.Option(
    None,
    "--beam-width",
    min=1,
    help="Exact scheme: search a beam that keeps, per stage, the prefix nearest the hull in each of this many "
    "solve-rate bins for each last provider.",
    show_default="every cascade when few, else branch and bound up to 3 stages (a proven optimum), else 64 bins",
)
MaxDepthOption = typer.Option(
    None,
    "--max-depth",
    min=1,
    help="Exact scheme: search cascades of at most this many stages.",
    show_default="any number; 6 in a beam search",
)
OrdersOption = typer.Option(
    None,
    "--orders",
    help="Exact scheme: search only these provider orders and their sub-orders, ';' between orders and ',' "
    "between providers, e.g. 'a,b;b,a'.",
    show_default="every order",
)


def exact_settings(beam_width: int | None, max_depth: int | None, orders: str | None) -> ExactSettings:
    """The search settings the three options give."""
    from modelarb.core.search import ExactSettings

    parsed: list[list[str]] | None = None
    if orders:
        parsed = [[name.strip() for name in order.split(",")] for order in orders.split(";")]
        if any(not name for order in parsed for name in order):
            raise ModelarbError(f"--orders {orders!r} has an empty name; write e.g. --orders 'a,b;b,a'")
    return ExactSettings(parsed, beam_width, max_depth)
