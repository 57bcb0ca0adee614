"""Loaders for tables (CSV or Parquet): long attempt tables and per-instance leaderboards.

- Long table: one row per attempt: `instance, provider, attempt, solved, cost`
  (optional `input_tokens, output_tokens, cost_unit`).
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

from modelarb.data.jsonl import Cells, MarketReport
from modelarb.data.outcomes import USD, Outcomes, from_cells
from modelarb.errors import DataError

LONG_COLUMNS = ("instance", "provider", "attempt", "solved", "cost")
LEADERBOARD_COLUMNS = ("instance", "provider", "resolved", "cost")
_TRUE = {"1", "true", "True", "TRUE", 1, True}
_FALSE = {"0", "false", "False", "FALSE", 0, False}


def _rows(path: Path) -> tuple[list[str], list[dict[str, Any]], int]:
    """Column names, rows, and the line number of the first data row (1 for Parquet)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            return list(table.column_names), table.to_pylist(), 1
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows, 2
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's fault
        raise DataError(f"{path}: cannot read the table ({exc})") from None


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
    columns, rows, first_line = _rows(path)
    leaderboard = "resolved" in columns and "attempt" not in columns
    required = LEADERBOARD_COLUMNS if leaderboard else LONG_COLUMNS
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing field '{missing[0]}' (columns needed: {', '.join(required)})")
    if not rows:
        raise DataError(f"{path}: the table has no rows")
    attempts: dict[str, dict[str, dict[int, tuple[bool, float]]]] = {}
    units: dict[str, set[str]] = {}
    for k, row in enumerate(rows):
        where = f"{path}, line {first_line + k}"
        instance, provider = str(row["instance"] or ""), str(row["provider"] or "")
        if not instance or not provider:
            raise DataError(f"{where}: field '{'instance' if not instance else 'provider'}' is empty")
        number = 0 if leaderboard else int(_number(row["attempt"], where, "attempt", integer=True))
        solved = _flag(row["resolved" if leaderboard else "solved"], where, "resolved" if leaderboard else "solved")
        cost = _number(row["cost"], where, "cost")
        for field in ("input_tokens", "output_tokens"):
            if field in columns and row[field] not in (None, ""):
                _number(row[field], where, field, integer=True)
        cell = attempts.setdefault(provider, {}).setdefault(instance, {})
        if number in cell:
            what = "instance id" if leaderboard else f"attempt {number} of instance"
            raise DataError(f"{where}: field 'instance': duplicate {what} {instance!r} for provider {provider!r}")
        cell[number] = (solved, cost)
        units.setdefault(provider, set()).add(str(row.get("cost_unit") or USD))
    known = sorted(attempts)
    chosen = list(providers) if providers else known
    unknown = [p for p in chosen if p not in attempts]
    if unknown:
        raise DataError(f"unknown provider {', '.join(map(repr, unknown))} in {path}; known providers: {', '.join(known)}")
    for p in chosen:
        if len(units[p]) > 1:
            raise DataError(f"{path}: provider {p!r} has costs in several units ({', '.join(sorted(units[p]))})")
    unit_of = {p: next(iter(units[p])) for p in chosen}
    if len(set(unit_of.values())) > 1:
        listing = ", ".join(f"{p} in {u}" for p, u in unit_of.items())
        raise DataError(f"cost units differ across the providers of one market ({listing}); choose providers priced in one unit")
    cells: dict[str, Cells] = {}
    for p in chosen:
        cells[p] = {}
        for instance, cell in attempts[p].items():
            ordered = [cell[a] for a in sorted(cell)]
            cells[p][instance] = (
                np.array([solved for solved, _ in ordered], dtype=bool),
                float(np.mean([cost for _, cost in ordered])),
            )
    shared = set.intersection(*(set(c) for c in cells.values()))
    outcomes = from_cells(cells, chosen, unit_of[chosen[0]], source=str(path))
    return outcomes, MarketReport(kept=len(shared), dropped={p: len(c) - len(shared) for p, c in cells.items()})
