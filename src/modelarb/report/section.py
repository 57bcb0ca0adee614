"""`Section`: one experiment's part of the report — a title, a two-line explanation, a figure."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure


@dataclass(frozen=True, eq=False)
class Section:
    """`name` is also the stem of the figure's files; `explanation` is two short lines."""

    name: str
    title: str
    explanation: tuple[str, str]
    figure: Figure
