"""Small JSON files (fitted plans, `--json` results): atomic writes, one clear error for a bad file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelarb.errors import DataError, ModelarbError


def write_json_file(path: Path, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically: to a temporary file, then renamed over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ModelarbError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_json_file(path: Path, what: str) -> Any:
    """The JSON value in `path`; a missing, unreadable or invalid file is a DataError naming it (as a `what`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the {what}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not a {what} (invalid JSON at line {exc.lineno}: {exc.msg})") from None
