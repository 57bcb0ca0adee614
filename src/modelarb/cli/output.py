"""Printing for the CLI: rich consoles, tables that fit the terminal, and `--json FILE` output.

Tables never cut a cell: a table wider than the terminal first lets cells wrap between words,
then is split into parts that repeat its first column, printed as it is or transposed (one
row per column, e.g. per provider), whichever needs fewer parts. `--wide` prints every table
at its full width instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from modelarb.core.units import with_unit
from modelarb.data.json_files import write_json_file

console = Console()
console_err = Console(stderr=True)
NUMERIC_START = set("0123456789.+-−$#∞—<>")
BORDER = 3  # a column's padding (one space each side) and its left border; the table adds one right border


@dataclass
class Layout:
    """How tables are printed: fitted to the terminal, or `wide` (each at its full width)."""

    wide: bool = False


layout = Layout()


def jsonable(value: Any) -> Any:
    """Numpy arrays and scalars to plain JSON values; non-finite floats to null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write `payload` as JSON to `path` (if given), atomically."""
    if path is None:
        return
    write_json_file(Path(path), jsonable(payload))
    console_err.print(f"wrote {path}")


def _text(value: Any) -> Text:
    """A cell as rich Text: Text as given, anything else as plain text (never read as markup)."""
    return value if isinstance(value, Text) else Text(str(value))


def _longest_word(text: Text) -> int:
    return max((cell_len(word) for line in text.plain.splitlines() for word in line.split()), default=0)


def natural_width(header: Text, cells: Sequence[Text]) -> int:
    """A column's width with no cell wrapped (the header may wrap between words)."""
    return max([_longest_word(header), *(cell.cell_len for cell in cells)], default=1) or 1


def least_width(header: Text, cells: Sequence[Text]) -> int:
    """A column's narrowest width that cuts no word: cells and header wrap only between words."""
    return max([_longest_word(header), *(_longest_word(cell) for cell in cells)], default=1) or 1


def fit_widths(natural: Sequence[int], least: Sequence[int], available: int) -> list[int] | None:
    """Column widths within `available` terminal columns: natural if they fit, else the least widths
    widened (the nearest to natural first, so most columns stay unwrapped); None if even those do not fit."""
    overhead = BORDER * len(natural) + 1
    if sum(natural) + overhead <= available:
        return list(natural)
    spare = available - overhead - sum(least)
    if spare < 0:
        return None
    widths = list(least)
    for k in sorted(range(len(widths)), key=lambda k: natural[k] - least[k]):
        grow = min(natural[k] - least[k], spare)
        widths[k] += grow
        spare -= grow
    return widths


def split_columns(natural: Sequence[int], available: int) -> list[list[int]]:
    """Groups of the columns after the first whose natural widths fit beside the first; at least one each."""
    parts: list[list[int]] = []
    used = natural[0] + BORDER + 1
    for k in range(1, len(natural)):
        if parts and used + natural[k] + BORDER <= available:
            parts[-1].append(k)
            used += natural[k] + BORDER
        else:
            parts.append([k])
            used = natural[0] + natural[k] + 2 * BORDER + 1
    return parts


def _grid(columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> tuple[list[Text], list[list[Text]]]:
    return [_text(c) for c in columns], [[_text(v) for v in row] for row in rows]


def _transposed(headers: list[Text], cells: list[list[Text]]) -> tuple[list[Text], list[list[Text]]]:
    """One row per column after the first, headed by the first column's values."""
    return [headers[0], *(row[0] for row in cells)], [
        [headers[k], *(row[k] for row in cells)] for k in range(1, len(headers))
    ]


def _widths(headers: list[Text], cells: list[list[Text]]) -> tuple[list[int], list[int]]:
    columns = [[row[k] for row in cells] for k in range(len(headers))]
    natural = [natural_width(h, c) for h, c in zip(headers, columns, strict=True)]
    least = [least_width(h, c) for h, c in zip(headers, columns, strict=True)]
    return natural, least


def _numeric(cells: Sequence[Text]) -> bool:
    """Whether a column holds numbers (amounts, shares, cascade numbers): they are right-aligned, names left."""
    return all(not cell.plain or cell.plain[0] in NUMERIC_START for cell in cells)


def _print_grid(headers: list[Text], cells: list[list[Text]], widths: Sequence[int]) -> None:
    out = Table(expand=False)
    for k, (header, width) in enumerate(zip(headers, widths, strict=True)):
        numeric = k > 0 and _numeric([row[k] for row in cells])
        out.add_column(header, justify="right" if numeric else "left", width=width, overflow="fold")
    for row in cells:
        out.add_row(*row)
    _print_grid_table(out, sum(widths) + BORDER * len(widths) + 1)


def _print_grid_table(out: Table, full_width: int) -> None:
    """Print a table; with `--wide` at `full_width` even beyond the terminal (rich fits it to the console's width)."""
    terminal = console.width
    if layout.wide:
        console.width = max(terminal, full_width)
    try:
        console.print(out, crop=False)
    finally:
        console.width = terminal


def table(title: str, columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
    """Print `title`, then a table whose first column names its rows (numbers right-aligned, text left-aligned).

    Cells are plain text (or rich Text for styling) and are never cut: see the module's docstring.
    """
    console.print(Text(title), soft_wrap=layout.wide)
    headers, cells = _grid(columns, rows)
    natural, least = _widths(headers, cells)
    available = console.width
    widths = natural if layout.wide else fit_widths(natural, least, available)
    if widths is not None:
        _print_grid(headers, cells, widths)
        return
    flipped_headers, flipped_cells = _transposed(headers, cells)
    flipped_natural, _ = _widths(flipped_headers, flipped_cells)
    parts, flipped_parts = split_columns(natural, available), split_columns(flipped_natural, available)
    if len(flipped_parts) < len(parts):
        headers, cells, parts = flipped_headers, flipped_cells, flipped_parts
    for number, part in enumerate(parts, 1):
        keep = [0, *part]
        part_headers, part_cells = [headers[k] for k in keep], [[row[k] for k in keep] for row in cells]
        part_natural, part_least = _widths(part_headers, part_cells)
        console.print(Text(f"part {number} of {len(parts)}"), style="dim")
        _print_grid(part_headers, part_cells, fit_widths(part_natural, part_least, available) or part_least)


def fields(title: str, rows: Sequence[Sequence[str]]) -> None:
    """Print `title`, then `name  value` lines (values wrapped between words beside their names); when a value
    holds a word too long for that (a path, a fingerprint), every value goes on its own lines below its name."""
    console.print(Text(title), soft_wrap=layout.wide)
    names = [Text(name, style="bold") for name, _ in rows]
    values = [Text(value) for _, value in rows]
    name_width = max((name.cell_len for name in names), default=0)
    room = console.width - name_width - 2
    if layout.wide or max((_longest_word(value) for value in values), default=0) <= room:
        out = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=False)
        out.add_column(no_wrap=True)
        out.add_column(overflow="fold")
        for name, value in zip(names, values, strict=True):
            out.add_row(name, value)
        _print_grid_table(out, name_width + 2 + max((v.cell_len for v in values), default=0))
        return
    for name, value in zip(names, values, strict=True):
        console.print(name)
        console.print(Padding(value, (0, 0, 0, 2)))


def money(value: float, unit: str) -> str:
    """A cost in its unit: `$0.1234` for dollars, `1.23e+05 compute` or `1 attempt` otherwise."""
    if not math.isfinite(value):
        return "∞"
    if unit == "USD":
        return f"${value:.4f}"
    return with_unit(f"{value:.4g}", unit)


def percent(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}%"


def mix_shares(weight: float, least: int = 0) -> tuple[str, str]:
    """The shares of a two-cascade mix, `weight` the second's: with `least` decimals, or as many more as keep both
    above 0 % and below 100 % (a weight that needs more than three is no mix and is never shown)."""
    for decimals in range(least, 4):
        second = round(100 * weight, decimals)
        if 0 < second < 100:
            return f"{100 - second:.{decimals}f}%", f"{second:.{decimals}f}%"
    return f"{100 * (1 - weight):.3g}%", f"{100 * weight:.3g}%"
