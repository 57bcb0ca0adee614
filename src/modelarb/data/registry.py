"""Registry of known datasets: where they come from, their pinned checksums, their units."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from modelarb.data.outcomes import USD
from modelarb.errors import DatasetError

COMPUTE = "compute"


@dataclass(frozen=True)
class Dataset:
    """A dataset pinned to one upstream commit; every file has a SHA-256 sum."""

    name: str
    description: str
    url_template: str
    commit: str
    files: dict[str, str]
    units: dict[str, str]

    def url(self, relpath: str) -> str:
        return self.url_template.format(commit=self.commit, path=relpath)

    def unit_of(self, relpath: str) -> str:
        folder = relpath.rsplit("/", 1)[0] if "/" in relpath else ""
        while folder not in self.units and "/" in folder:
            folder = folder.rsplit("/", 1)[0]
        return self.units.get(folder, USD)


COMPUTATIONAL_ARBITRAGE = Dataset(
    name="computational-arbitrage",
    description="Recorded attempts released with 'Computational Arbitrage in AI Model Markets' (arXiv 2603.22404)",
    url_template="https://raw.githubusercontent.com/RicardoDominguez/computational-arbitrage/{commit}/data/{path}",
    commit="f14d5fdabbddd8fbfa08f1b4fa7b92d54db75881",
    files={
        "lean/distill-1.7b-192k.jsonl": "ac8bbd3dbd8ba7e7b78bda04b90d1daf214f39480dcf48564b563ca0ea1f2a1a",
        "lean/distill-1.7b-24k.jsonl": "f23a270233b6aedfe4f6e7fe30687ed519db17fc1f7cf6c8509c9cbbcf962d6a",
        "lean/distill-1.7b-3k.jsonl": "369d2abccfbc59ff2b9cd541f79048a54050d368ee8fb37cc2705f0a205f62b8",
        "lean/distill-1.7b-72k.jsonl": "bd0b18455540ad3129ba9dde617f86869ee87efc4a9ba969b734b81945c67cde",
        "lean/distill-1.7b-8k.jsonl": "66585624c3d00e45831055401ef657fe03dfd87e427523598cc63aa19bec34a0",
        "lean/kimina-1.7b.jsonl": "57528208e424f751e25ff02a293584e55b5166152d49288dc0026770aa9d1fca",
        "lean/kimina-72b.jsonl": "857719caf27939f6ae2870340299c377cb341c5725cefce9dd4f11a7cbffbf4d",
        "lean/kimina-8b.jsonl": "03dcc8b7640836acb76a87e53eb0f4e9eab7923ac784328cd3febf93154a99a6",
        "swebench/deepseek.jsonl": "e8f87b41afc97232efe8c464950af70f4ce66bccaf269bad51efc4062002d07d",
        "swebench/distill/1.7b-1e.jsonl": "cef0b21cd4c4e79189958f61d2d6b364977d44c901a5078e486ab7b76b3ed881",
        "swebench/distill/1.7b-281.jsonl": "6a0c0fbe9f2a8b43db7abbcbc07e730fe700d872598ea9345b05955fe700a933",
        "swebench/distill/1.7b-2816.jsonl": "4631302001652d8a10621f74af063491c4cc4b8f256d31261e34d0ae1d8a61ba",
        "swebench/distill/1.7b-84.jsonl": "de3ecc7c768923a59a9aa91dbbd0be8a8969c344c4ea8ece607baab903e7ad2e",
        "swebench/distill/1.7b-845.jsonl": "86724aed99329c3adc01d94bbf68a92a5e66177ccdfd2e152d5a48a1a38bef07",
        "swebench/distill/qwen3-coder-480b.jsonl": "b64ee27721ac745d7271b9444a92cd49f246c0898b6d4aa398967282eb535795",
        "swebench/gpt5mini.jsonl": "cc9c60c7ceec0142a53e92b4d5595d1bf4a8de78a00c9ad0d1e07653447e7350",
        "swebench/mini-coder-4b.jsonl": "08b80b3b26fcfea7bdaf7d70ce0e49fc4faaea6992bc6958f2fe577bc77f656b",
        "swebench/minicoder4b.jsonl": "7e273348308aa0a06d00b6dbd4c01891aa77982a4b5df8fd725e82720f328e98",
        "swebench/qwen3-coder-30b.jsonl": "0f142279d6f72a69a6c2e1f9def98aa92d4d8a23d1e85e9e106609ec012e8c09",
        "swebench/qwen3-coder-480b.jsonl": "f3879cd17c5510147715c4814ed80e08909ac7a98383d78e2b1070ddfd0b4147",
        "swebench/sonnet.jsonl": "e950fbca1e9220ad47e24ca3df19b54f0b5f1e0f5ca61e95ab671b6a798971a8",
    },
    units={"swebench": USD, "lean": COMPUTE},
)

DATASETS: dict[str, Dataset] = {COMPUTATIONAL_ARBITRAGE.name: COMPUTATIONAL_ARBITRAGE}


def dataset(name: str) -> Dataset:
    """The registered dataset `name`; an unknown name lists the known ones."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _unit_by_sum() -> dict[str, str]:
    return {h: d.unit_of(p) for d in DATASETS.values() for p, h in d.files.items()}


def registered_unit(path: Path) -> str | None:
    """The cost unit of a file that is a known dataset file (matched by checksum), else None."""
    try:
        return _unit_by_sum().get(sha256_of(path))
    except OSError:
        return None


@lru_cache(maxsize=1)
def _dataset_by_sum() -> dict[str, str]:
    return {h: d.name for d in DATASETS.values() for h in d.files.values()}


def registered_dataset(path: Path) -> str | None:
    """The registered dataset a file belongs to (matched by checksum), else None."""
    try:
        return _dataset_by_sum().get(sha256_of(path))
    except OSError:
        return None
