"""The paper's markets, read from its released data folder (`swebench/` and `lean/`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelarb.data.market import load_market
from modelarb.data.outcomes import Outcomes
from modelarb.errors import DataError

SWEBENCH = "swebench"
LEAN = "lean"
SWEBENCH_DISTILL = "swebench/distill"

PAIR = ("gpt5mini", "deepseek")
SIX = ("minicoder4b", "qwen3-coder-30b", "qwen3-coder-480b", "gpt5mini", "deepseek", "sonnet")
ENTRY_INCUMBENTS = ("qwen3-coder-30b", "gpt5mini")
ENTRANT = "minicoder4b"
LEAN_MARKET = ("kimina-1.7b", "kimina-8b", "kimina-72b")


@dataclass(frozen=True)
class Distillation:
    """A teacher and its distilled student checkpoints, each labelled by its distillation data size."""

    folder: str
    teacher: str
    students: tuple[str, ...]
    sizes: tuple[float, ...]
    size_label: str


SWEBENCH_STUDENTS = Distillation(
    SWEBENCH_DISTILL,
    "qwen3-coder-480b",
    ("1.7b-84", "1.7b-281", "1.7b-845", "1.7b-2816", "1.7b-1e"),
    (70e6, 2e8, 6e8, 1.8e9, 5.4e9),
    "distillation tokens",
)
LEAN_STUDENTS = Distillation(
    LEAN,
    "kimina-72b",
    ("distill-1.7b-3k", "distill-1.7b-8k", "distill-1.7b-24k", "distill-1.7b-72k", "distill-1.7b-192k"),
    (3e3, 8e3, 24e3, 72e3, 192e3),
    "distillation examples",
)


@dataclass(frozen=True)
class PaperData:
    """The root folder of the paper's data; markets are loaded once and kept."""

    root: Path
    _loaded: dict[tuple[str, tuple[str, ...]], Outcomes] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        missing = [name for name in (SWEBENCH, LEAN) if not (self.root / name).is_dir()]
        if missing:
            raise DataError(
                f"{self.root} is not the paper's data folder (no {' or '.join(f'{m}/' for m in missing)} in it); "
                "pass --data pointing at the computational-arbitrage folder that holds swebench/ and lean/"
            )

    def market(self, folder: str, providers: Sequence[str]) -> Outcomes:
        """The market of `providers` (in this order) from `folder` (e.g. 'swebench'), over their shared instances."""
        key = (folder, tuple(providers))
        if key not in self._loaded:
            self._loaded[key] = load_market(self.root / folder, providers)[0]
        return self._loaded[key]
