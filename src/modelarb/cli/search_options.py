"""Options of the exact scheme's cascade search (`--beam-width`, `--max-depth`, `--orders`) and of where work runs
(`--cluster`, `--workers`, `--parts`), shared by commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from modelarb.errors import ModelarbError

if TYPE_CHECKING:
    from modelarb.core.partition import Partition
    from modelarb.core.search import ExactSettings

BeamWidthOption = typer.Option(
    None,
    "--beam-width",
    min=1,
    help="Exact scheme: a beam search keeping, per stage, the prefix nearest the hull in each of this many "
    "solve-rate bins for each set of providers used.",
    show_default="exhaustive when small, else branch and bound up to 3 stages (a proven optimum when it finishes), "
    "else a 64-bin beam",
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

ClusterOption = typer.Option(
    None,
    "--cluster",
    help="Run the work on the Dask scheduler at this address, e.g. tcp://10.0.0.5:8786 (docs/cluster.md); "
    "checked before any work.",
    show_default=False,
)
WorkersOption = typer.Option(
    None,
    "--workers",
    min=1,
    help="Exact scheme: split the search into parts by first-stage provider and run them on this many local "
    "processes (1: in this process); the same numbers as --cluster.",
    show_default="one unsplit search",
)
PartsOption = typer.Option(
    None,
    "--parts",
    min=1,
    help="Parts of a split search (--workers, --cluster), at most one per provider. Exhaustive and "
    "finished branch-and-bound results do not depend on it; a beam search's may (never on --workers or --cluster).",
    show_default="8",
)


def partition(cluster: str | None, workers: int | None, parts: int | None, scheme: str) -> Partition | None:
    """The split search `--cluster`, `--workers` and `--parts` ask for (None: one search in this process); a
    cluster's scheduler must answer now, before any work."""
    if cluster is None and workers is None:
        if parts is not None:
            raise ModelarbError("--parts splits a search run with --workers N or --cluster ADDRESS; give one of them")
        return None
    if scheme != "exact":
        raise ModelarbError("--workers and --cluster split the exact scheme's search; use --scheme exact")
    from modelarb.core.partition import Partition
    from modelarb.parallel import executor_for

    return Partition(executor_for("serial" if workers == 1 else "processes", cluster, workers, check=True), parts)


def exact_settings(
    beam_width: int | None, max_depth: int | None, orders: str | None, split: Partition | None = None
) -> ExactSettings:
    """The search settings the options give."""
    from modelarb.core.search import ExactSettings

    parsed: list[list[str]] | None = None
    if orders:
        parsed = [[name.strip() for name in order.split(",")] for order in orders.split(";")]
        if any(not name for order in parsed for name in order):
            raise ModelarbError(f"--orders {orders!r} has an empty name; write e.g. --orders 'a,b;b,a'")
    return ExactSettings(parsed, beam_width, max_depth, split)
