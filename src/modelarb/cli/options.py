"""Options shared by commands, and turning them into library inputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelarb.cli.output import console_err, layout
from modelarb.errors import ModelarbError

if TYPE_CHECKING:
    from modelarb.data.outcomes import Outcomes

DataOption = typer.Option(
    None,
    "--data",
    help="Market data: a folder of <provider>.jsonl files, or a .csv or .parquet table.",
    show_default="the paper's SWE-bench data in $MODELARB_DATA, else in the pulled copy",
)
ProvidersOption = typer.Option(
    None,
    "--providers",
    "-p",
    help="Provider names, comma-separated, in cascade order.",
    show_default="every provider in --data",
)


def output_path(path: Path | None) -> Path | None:
    """Typer callback: an output file must be writable where it is named, checked before any work."""
    if path is None:
        return None
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ModelarbError(f"{path} is a folder; name a file to write, e.g. {path / 'results.json'}")
    if not folder.is_dir():
        raise ModelarbError(f"cannot write {path}: the folder {folder} does not exist; create it or name another file")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ModelarbError(f"cannot write {path}: permission denied; name a file in a folder you can write to")
    return path


def output_folder(path: Path) -> Path:
    """Typer callback: a folder to write into must be a folder, or creatable where it is named, checked first."""
    if path.exists():
        if not path.is_dir():
            raise ModelarbError(f"{path} is a file; name a folder to write into, e.g. {path.with_suffix('')}-out")
        if not os.access(path, os.W_OK):
            raise ModelarbError(f"cannot write into {path}: permission denied; name a folder you can write to")
        return path
    ancestor = next(parent for parent in path.absolute().parents if parent.exists())
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise ModelarbError(f"cannot create {path}: {ancestor} is not a folder you can write to; name another folder")
    return path


def fold_count(folds: int) -> int:
    """Typer callback: 0 skips cross-validation; otherwise at least 2 folds."""
    if folds == 1:
        raise ModelarbError("--folds 1 leaves nothing to fit on; give at least 2 folds, or 0 to skip cross-validation")
    return folds


FoldsOption = typer.Option(
    5,
    "--folds",
    min=0,
    help="Folds over instances of the cross-validated margin: fit on all but one, served on that one (0: skip it).",
    callback=fold_count,
)


def check_folds(folds: int, n_instances: int) -> None:
    """Folds must not outnumber the market's instances (checked right after loading, before any search)."""
    if folds > n_instances:
        raise ModelarbError(f"--folds {folds}: the market has only {n_instances} instances to split")


def unit_name(unit: str | None) -> str | None:
    """Typer callback: a cost unit is a non-empty name."""
    if unit is not None and not unit.strip():
        raise ModelarbError("--unit is empty; name the cost unit, e.g. --unit USD or --unit attempts")
    return None if unit is None else unit.strip()


JsonOption = typer.Option(
    None, "--json", help="Also write the results to this JSON file.", dir_okay=False, callback=output_path
)
UnitOption = typer.Option(
    None,
    "--unit",
    help="Cost unit of the data, e.g. USD or attempts, overriding what the files say.",
    show_default="the files' unit",
    callback=unit_name,
)


def wide_tables(wide: bool) -> bool:
    """Typer callback: `--wide` prints tables at their full width instead of fitting them to the terminal."""
    layout.wide = wide
    return wide


WideOption = typer.Option(
    False,
    "--wide",
    help="Print tables at their full width, one row per line, instead of fitting them to the terminal "
    "(for a pager such as less -S, or a file).",
    callback=wide_tables,
)


def provider_list(text: str | None) -> list[str] | None:
    """`a,b,c` -> ['a', 'b', 'c']; None or empty -> None (all providers)."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise ModelarbError(f"--providers {text!r} has an empty name; write e.g. --providers gpt5mini,deepseek")
    return names


def positive_numbers(text: str, option: str, example: str) -> list[float]:
    """`1,3e2,10` -> [1.0, 300.0, 10.0]: positive finite numbers, else one clear error naming `option`."""
    try:
        numbers = [float(part) for part in text.split(",")]
    except ValueError:
        raise ModelarbError(f"{option} {text!r}: give comma-separated positive numbers, e.g. {example}") from None
    if not all(0 < number < float("inf") for number in numbers):
        raise ModelarbError(f"{option} {text!r}: every number must be positive and finite, e.g. {example}")
    return numbers


def data_path(data: Path | None, domain: str = "swebench") -> Path:
    """The data to read: `--data`, else the `domain` subfolder of `$MODELARB_DATA` or of the pulled copy."""
    if data is not None:
        return data
    from modelarb.data.locate import local_domain

    return local_domain(domain)


def market(data: Path | None, providers: str | None, unit: str | None = None, domain: str = "swebench") -> Outcomes:
    """Load a market from the CLI's options, telling the user which instances were dropped."""
    from modelarb.data.market import load_market

    outcomes, report = load_market(data_path(data, domain), provider_list(providers), unit)
    if any(report.dropped.values()):
        console_err.print(f"market: {report}", highlight=False)
    return outcomes
