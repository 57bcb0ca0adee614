"""Shared look of the report's figures: axis labels with units, provider colours, figure frames."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult
from modelarb.data.outcomes import USD

Array = NDArray[np.float64]
Place = Literal["best", "upper left", "upper right", "lower left", "lower right"]

SOLVE_RATE = "solve rate u (% solved)"
MARGIN = "net profit margin (%)"
SHARE = "share of the market's revenue (%)"
ARBITRAGEUR = "#d62728"
MARKET = "#222222"
NAMES = {
    "gpt5mini": "GPT-5 mini",
    "deepseek": "DeepSeek v3.2",
    "sonnet": "Claude Sonnet 4.5",
    "qwen3-coder-30b": "Qwen3-Coder 30B",
    "qwen3-coder-480b": "Qwen3-Coder 480B",
    "minicoder4b": "mini-coder 4B",
    "kimina-1.7b": "Kimina 1.7B",
    "kimina-8b": "Kimina 8B",
    "kimina-72b": "Kimina 72B",
    "arbitrageur": "arbitrageur",
}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
COLOURS = dict(zip(NAMES, _PALETTE, strict=False))


def name(provider: str) -> str:
    """A provider's display name."""
    return NAMES.get(provider, provider)


def colour(provider: str) -> str:
    """A provider's colour, the same in every figure."""
    return COLOURS.get(provider, _PALETTE[zlib.crc32(provider.encode()) % len(_PALETTE)])


def cost_label(unit: str, per: str = "issue") -> str:
    """Axis label of a cost: '$ per issue' for dollars, 'compute units per problem' otherwise."""
    return f"expected cost ($ per {per})" if unit == USD else f"expected cost (compute units per {per})"


def per_item(unit: str) -> str:
    """What one instance is called in a market: an issue (SWE-bench) or a problem (Lean)."""
    return "issue" if unit == USD else "problem"


def money_tick(value: float, unit: str) -> str:
    """A tick label of a cost axis: `$0.01` for dollars, `1e6` otherwise."""
    return f"${value:g}" if unit == USD else f"{value:.0e}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def size_tick(value: float) -> str:
    """A count with a suffix: 70M, 1.8B, 24k."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:g}"


def log_axis(ax: Axes, which: str, label: Callable[[float], str]) -> None:
    """A log-scale axis whose decades are labelled by `label` (plain text: fast, and readable as money)."""
    ax.set_xscale("log") if which == "x" else ax.set_yscale("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(lambda value, _: label(value)))
    axis.set_minor_formatter(NullFormatter())


def figure(title: str, panels: int = 1, width: float = 6.0, height: float = 4.6) -> tuple[Figure, list[Axes]]:
    """A titled figure with `panels` side by side (no pyplot: nothing global, rendered with Agg on save)."""
    fig = Figure(figsize=(width * panels, height), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig, list(axes[0])


def percent_axis(ax: Axes, which: str = "y") -> None:
    """Show fractions on an axis as percentages, without trailing zeros (68%, 12.5%)."""
    (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(FuncFormatter(lambda x, _: f"{100 * x:.4g}%"))


def finish(
    ax: Axes, title: str, xlabel: str, ylabel: str, legend: Place | None = "best", legend_size: float = 8
) -> None:
    """Panel title, axis labels, a light grid and a legend at location `legend` (None: no legend)."""
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if legend is not None:
        ax.legend(fontsize=legend_size, loc=legend, framealpha=0.85)


def stacked_shares(ax: Axes, levels: Array, shares: Array, names: Sequence[str]) -> None:
    """Revenue shares (U, columns) stacked over u; a column named 'arbitrageur' is drawn in its colour.

    Columns that are zero at every level are left out of the stack and the legend.
    """
    kept = [k for k in range(shares.shape[1]) if np.nansum(shares[:, k]) > 0]
    colours = [ARBITRAGEUR if names[k] == "arbitrageur" else colour(names[k]) for k in kept]
    labels = [name(names[k]) for k in kept]
    ax.stackplot(levels, np.nan_to_num(shares[:, kept]).T, colors=colours, labels=labels, alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_xlim(levels[0], levels[-1])
    percent_axis(ax, "x")
    percent_axis(ax, "y")


def margin_panel(ax: Axes, result: ArbitrageResult) -> None:
    """Finish a panel of the margin m(u) drawn by the caller: a star at its maximum, percent axes, title, legend."""
    ax.plot(
        [result.max_margin_at],
        [result.max_margin],
        "*",
        color=ARBITRAGEUR,
        ms=13,
        label=f"maximum {100 * result.max_margin:.1f}% at u = {result.max_margin_at:.3f}",
    )
    percent_axis(ax, "x")
    percent_axis(ax, "y")
    ax.set_ylim(0, max(0.05, 1.15 * result.max_margin))
    finish(ax, "Arbitrageur's net profit margin", SOLVE_RATE, MARGIN, legend="upper left")
