"""One entry point for market data: a paper-layout folder or a table file, told apart by path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from modelarb.data.jsonl import MarketReport, load_jsonl_folder
from modelarb.data.locate import resolve_dataset_path
from modelarb.data.outcomes import Outcomes
from modelarb.data.table import load_table
from modelarb.errors import DataError

TABLE_SUFFIXES = (".csv", ".parquet")


def load_market(
    path: str | Path, providers: Sequence[str] | None = None, unit: str | None = None
) -> tuple[Outcomes, MarketReport]:
    """Load the market of `providers` from a folder of `<provider>.jsonl` or a `.csv`/`.parquet` table.

    A path that does not exist but starts with a registered dataset's name
    (`computational-arbitrage/swebench`) is read from that dataset's local copy:
    `$MODELARB_DATA`, else the pulled cache.
    """
    path = Path(path).expanduser()
    if not path.exists():
        path = resolve_dataset_path(path) or path
    if path.is_dir():
        return load_jsonl_folder(path, providers, unit)
    if path.suffix.lower() in TABLE_SUFFIXES:
        outcomes, report = load_table(path, providers)
        return (outcomes if unit is None else replace(outcomes, unit=unit)), report
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(f"{path}: expected a folder of <provider>.jsonl files or a .csv/.parquet table")
