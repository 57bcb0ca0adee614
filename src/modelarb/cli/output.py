"""Printing for the CLI: rich consoles, tables, and `--json FILE` output."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from modelarb.data.json_files import write_json_file

console = Console()
console_err = Console(stderr=True)


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


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table; the first column is left-aligned, the others right-aligned."""
    out = Table(title=title, title_justify="left")
    for k, name in enumerate(columns):
        out.add_column(name, justify="left" if k == 0 else "right")
    for row in rows:
        out.add_row(*(str(v) for v in row))
    console.print(out)


def money(value: float, unit: str) -> str:
    """A cost in its unit: `$0.1234` for dollars, `1.23e+05 compute` otherwise."""
    if not math.isfinite(value):
        return "∞"
    if unit == "USD":
        return f"${value:.4f}"
    return f"{value:.4g} {unit}"


def percent(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}%"
