"""Loader for the paper's layout: a folder of `<provider>.jsonl` files.

Each line is `{"id": ..., "mean_cost": ..., "attempts": [...]}`, optionally with
`"cost_unit"`. A market is a chosen set of providers over the instances they all share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from modelarb.data.outcomes import USD, Outcomes, from_cells
from modelarb.data.registry import registered_dataset, registered_unit
from modelarb.errors import DataError

Cells = dict[str, tuple[NDArray[np.bool_], float]]


@dataclass(frozen=True)
class MarketReport:
    """How a market was formed: instances kept and dropped, per provider."""

    kept: int
    dropped: dict[str, int]

    @classmethod
    def of(cls, cells: dict[str, Cells]) -> MarketReport:
        """The report of a market formed from per-provider cells over their shared instances."""
        shared = set.intersection(*(set(c) for c in cells.values()))
        return cls(kept=len(shared), dropped={p: len(c) - len(shared) for p, c in cells.items()})

    def __str__(self) -> str:
        parts = [f"{p}: {k} instance(s) not shared by all providers" for p, k in self.dropped.items() if k]
        return f"{self.kept} shared instances" + (f"; dropped {'; '.join(parts)}" if parts else "")


def available_providers(folder: Path) -> list[str]:
    """Provider names in a paper-layout folder (file stems, sorted)."""
    return sorted(p.stem for p in folder.glob("*.jsonl"))


def choose_providers(providers: Sequence[str] | None, known: Sequence[str], source: Path) -> list[str]:
    """The providers of a market (all `known` when None); an unknown name lists the known ones."""
    chosen = list(providers) if providers else list(known)
    unknown = [p for p in chosen if p not in known]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise DataError(f"unknown provider {names} in {source}; known providers: {', '.join(known)}")
    if len(set(chosen)) != len(chosen):
        raise DataError(f"a provider is named twice in {', '.join(chosen)}")
    return chosen


def common_unit(units: dict[str, str]) -> str:
    """The one cost unit of a market's providers ({provider: unit}); differing units are an error."""
    if len(set(units.values())) > 1:
        listing = ", ".join(f"{p} in {u}" for p, u in units.items())
        raise DataError(
            f"cost units differ across the providers of one market ({listing}); choose providers priced in one unit"
        )
    return next(iter(units.values()))


def _attempt_values(attempts: list[object], where: str) -> NDArray[np.bool_]:
    """A line's attempts as booleans, checked in one numpy pass; the first bad value is named."""
    try:
        values = np.array(attempts)
    except (ValueError, OverflowError):  # ragged nesting, integers beyond int64
        values = np.array([None])
    if values.ndim == 1 and (values.dtype == bool or (values.dtype.kind in "iu" and np.isin(values, (0, 1)).all())):
        return values.astype(bool)
    bad = next(
        (a for a in attempts if not (a is True or a is False or (isinstance(a, int) and a in (0, 1)))), attempts[0]
    )
    raise DataError(f"{where}: field 'attempts' holds {bad!r}; each attempt must be 0, 1, true or false")


def read_provider_file(path: Path) -> tuple[Cells, str | None]:
    """Validated cells of one provider file, and the cost unit its lines declare (if any)."""
    cells: Cells = {}
    units: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from None
    for number, line in enumerate(lines, start=1):
        where = f"{path}, line {number}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg}); is the file truncated?") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with fields id, mean_cost, attempts")
        for name in ("id", "mean_cost", "attempts"):
            if name not in row:
                raise DataError(f"{where}: missing field '{name}'")
        instance = row["id"]
        if not isinstance(instance, str) or not instance:
            raise DataError(f"{where}: field 'id' must be a non-empty string")
        if instance in cells:
            raise DataError(f"{where}: field 'id': duplicate instance id {instance!r}")
        cost = row["mean_cost"]
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
            raise DataError(f"{where}: field 'mean_cost' is {cost!r}; it must be a finite number >= 0")
        attempts = row["attempts"]
        if not isinstance(attempts, list):
            raise DataError(f"{where}: field 'attempts' must be a list of 0/1 values")
        if not attempts:
            raise DataError(f"{where}: field 'attempts' is empty; an instance needs at least one attempt")
        values = _attempt_values(attempts, where)
        if "cost_unit" in row:
            units.add(str(row["cost_unit"]))
        cells[instance] = (values, float(cost))
    if not cells:
        raise DataError(f"{path}: the file holds no instances")
    if len(units) > 1:
        raise DataError(f"{path}: field 'cost_unit' differs between lines ({', '.join(sorted(units))})")
    return cells, (units.pop() if units else None)


def load_jsonl_folder(
    folder: Path, providers: Sequence[str] | None = None, unit: str | None = None
) -> tuple[Outcomes, MarketReport]:
    """The market of `providers` (all files when None) over the instances they share.

    The cost unit is, in order: `unit`; the `cost_unit` the files declare; the unit
    registered for a known dataset file; US dollars.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    known = available_providers(folder)
    if not known:
        raise DataError(f"{folder}: no <provider>.jsonl files in this folder")
    chosen = choose_providers(providers, known, folder)
    cells: dict[str, Cells] = {}
    units: dict[str, str] = {}
    datasets: set[str | None] = set()
    for p in chosen:
        path = folder / f"{p}.jsonl"
        cells[p], declared = read_provider_file(path)
        units[p] = unit or declared or registered_unit(path) or USD
        datasets.add(registered_dataset(path))
    dataset = datasets.pop() if len(datasets) == 1 else None
    outcomes = from_cells(cells, chosen, common_unit(units), source=str(folder), dataset=dataset)
    return outcomes, MarketReport.of(cells)
