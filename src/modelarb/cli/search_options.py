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
    help="Exact scheme: a beam search keeping, per stage, the prefix nearest the hull in each of this many "
    "solve-rate bins for each set of providers used (default: exhaustive when small, else branch and bound up to 3 "
    "stages (a proven optimum), else a 64-bin beam)",
    show_default=False,
)
MaxDepthOption = typer.Option(
    None,
    "--max-depth",
    min=1,
    help="Exact scheme: cascades of at most this many stages (default: any; 6 for a beam search)",
    show_default=False,
)
OrdersOption = typer.Option(
    None,
    "--orders",
    help="Exact scheme: provider orders to search, ';' between orders, ',' between providers, e.g. "
    "'gpt5mini,deepseek;deepseek,gpt5mini' (sub-orders are searched too; default: every order)",
    show_default=False,
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
