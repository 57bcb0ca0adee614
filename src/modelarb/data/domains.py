"""Reader for a user's domain mapping: a CSV of `instance,domain` rows."""

from __future__ import annotations

import csv
from pathlib import Path

from modelarb.errors import DataError


def read_domain_map(path: Path) -> dict[str, str]:
    """A CSV with columns `instance,domain` (header required) as {instance id: domain name}."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the domain file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; expected a CSV with columns instance,domain") from None
    if not rows or [cell.strip().lower() for cell in rows[0][:2]] != ["instance", "domain"]:
        raise DataError(f"{path}: line 1 must be the header instance,domain")
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}: line {line}: expected two non-empty fields instance,domain, got {row}")
        instance, domain = row[0].strip(), row[1].strip()
        if mapping.get(instance, domain) != domain:
            raise DataError(
                f"{path}: line {line}: instance {instance!r} is in both {mapping[instance]!r} and {domain!r}"
            )
        mapping[instance] = domain
    if not mapping:
        raise DataError(f"{path}: no instance,domain rows")
    return mapping
