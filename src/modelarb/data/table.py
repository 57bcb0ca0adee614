"""Loaders for tables (CSV or Parquet): long attempt tables and per-instance leaderboards.

- Long table: one row per attempt: `instance, provider, attempt, solved, cost`
  (optional `cost_unit`; optional `input_tokens, output_tokens` are checked to be
  integers >= 0 but not kept: `Outcomes` holds attempts and costs only).
- Leaderboard: one row per (instance, provider): `instance, provider, resolved, cost`
  (optional `cost_unit`); a single attempt each.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelarb.data.jsonl import Cells, MarketReport, choose_providers, common_unit
from modelarb.data.outcomes import USD, Outcomes, from_cells
from modelarb.errors import DataError

LONG_COLUMNS = ("instance", "provider", "attempt", "solved", "cost")
LEADERBOARD_COLUMNS = ("instance", "provider", "resolved", "cost")
_TRUE = {"1", "true", "True", "TRUE", 1}
_FALSE = {"0", "false", "False", "FALSE", 0}

Row = tuple[str, dict[str, Any]]


def _csv_rows(path: Path) -> tuple[list[str], list[Row]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise DataError(f"{path}: no header row; is the file empty or truncated?")
        rows: list[Row] = []
        for values in reader:
            where = f"{path}, line {reader.line_num}"
            if not values:
                continue
            if len(values) != len(header):
                raise DataError(
                    f"{where}: the row has {len(values)} fields, the header {len(header)}; is the file truncated?"
                )
            rows.append((where, dict(zip(header, values, strict=True))))
    return header, rows


def _rows(path: Path) -> tuple[list[str], list[Row]]:
    """Column names and (where, row) pairs; `where` is `file, line N` (CSV) or `file, row N` (Parquet)."""
    try:
        if path.suffix.lower() != ".parquet":
            return _csv_rows(path)
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return list(table.column_names), [(f"{path}, row {k}", r) for k, r in enumerate(table.to_pylist(), start=1)]
    except DataError:
        raise
    except Exception as exc:  # any reader failure (I/O, encoding, a corrupt Parquet file) is the file's fault
        raise DataError(f"{path}: cannot read the table ({exc}); is the file truncated?") from None


def _number(value: Any, where: str, field: str, *, integer: bool = False) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (integer and number != int(number)):
        kind = "an integer >= 0" if integer else "a finite number >= 0"
        raise DataError(f"{where}: field '{field}' is {value!r}; it must be {kind}")
    return number


def _flag(value: Any, where: str, field: str) -> bool:
    if isinstance(value, str | int | float):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise DataError(f"{where}: field '{field}' is {value!r}; it must be 0, 1, true or false")


def load_table(path: Path, providers: Sequence[str] | None = None) -> tuple[Outcomes, MarketReport]:
    """A market from a long attempt table or a leaderboard table (told apart by columns)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    columns, rows = _rows(path)
    leaderboard = "resolved" in columns and "attempt" not in columns
    required = LEADERBOARD_COLUMNS if leaderboard else LONG_COLUMNS
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing field '{missing[0]}' (columns needed: {', '.join(required)})")
    if not rows:
        raise DataError(f"{path}: the table has no rows")
    solved_field = "resolved" if leaderboard else "solved"
    attempts: dict[str, dict[str, dict[int, tuple[bool, float]]]] = {}
    units: dict[str, set[str]] = {}
    for where, row in rows:
        instance, provider = str(row["instance"] or ""), str(row["provider"] or "")
        if not instance or not provider:
            raise DataError(f"{where}: field '{'instance' if not instance else 'provider'}' is empty")
        number = 0 if leaderboard else int(_number(row["attempt"], where, "attempt", integer=True))
        solved = _flag(row[solved_field], where, solved_field)
        cost = _number(row["cost"], where, "cost")
        for field in ("input_tokens", "output_tokens"):
            if row.get(field) not in (None, ""):
                _number(row[field], where, field, integer=True)
        cell = attempts.setdefault(provider, {}).setdefault(instance, {})
        if number in cell:
            what = "instance id" if leaderboard else f"attempt {number} of instance"
            raise DataError(f"{where}: field 'instance': duplicate {what} {instance!r} for provider {provider!r}")
        cell[number] = (solved, cost)
        units.setdefault(provider, set()).add(str(row.get("cost_unit") or USD))
    chosen = choose_providers(providers, sorted(attempts), path)
    for p in chosen:
        if len(units[p]) > 1:
            raise DataError(f"{path}: provider {p!r} has costs in several units ({', '.join(sorted(units[p]))})")
    unit = common_unit({p: next(iter(units[p])) for p in chosen})
    cells: dict[str, Cells] = {}
    for p in chosen:
        cells[p] = {}
        for instance, cell in attempts[p].items():
            ordered = [cell[a] for a in sorted(cell)]
            cells[p][instance] = (
                np.array([solved for solved, _ in ordered], dtype=bool),
                float(np.mean([cost for _, cost in ordered])),
            )
    return from_cells(cells, chosen, unit, source=str(path)), MarketReport.of(cells)
