"""Tables of numpy columns in step, one row per cascade or box: rows taken, tables joined."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np


@dataclass(frozen=True, eq=False)
class Rows:
    """A base for frozen dataclasses whose fields are arrays with one row per item (first axis)."""

    def take(self, index: Any) -> Self:
        """The rows at `index` (integer array or slice)."""
        return type(self)(*(getattr(self, column.name)[index] for column in fields(self)))

    @classmethod
    def joined(cls, parts: Sequence[Self]) -> Self:
        """The parts' rows, one after the other."""
        return cls(*(np.concatenate([getattr(part, column.name) for part in parts]) for column in fields(cls)))
