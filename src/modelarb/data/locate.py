"""Where a registered dataset lives locally: the user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path

from modelarb.data.registry import dataset
from modelarb.errors import DatasetError

DEFAULT_DATASET = "computational-arbitrage"


def cache_root() -> Path:
    """Root of modelarb's dataset cache (`MODELARB_CACHE` overrides the platform default)."""
    override = os.environ.get("MODELARB_CACHE")
    return Path(override) if override else user_cache_path("modelarb") / "datasets"


def dataset_dir(name: str = DEFAULT_DATASET) -> Path:
    """The cache folder of dataset `name` (which may not have been pulled yet)."""
    return cache_root() / dataset(name).name


def local_copy(name: str = DEFAULT_DATASET) -> Path | None:
    """Where a local copy of `name` is: `$MODELARB_DATA` if set (it names a copy of the paper's data,
    DEFAULT_DATASET), else the cache once fully pulled, else None."""
    env = os.environ.get("MODELARB_DATA")
    if env and dataset(name).name == DEFAULT_DATASET:
        return Path(env)
    folder = dataset_dir(name)
    return folder if all((folder / relpath).is_file() for relpath in dataset(name).files) else None


def local_domain(domain: str, name: str = DEFAULT_DATASET) -> Path:
    """The `domain` subfolder (e.g. `swebench`) of the local copy of `name`; a clear error if there is none."""
    root = local_copy(name)
    if root is None:
        raise DatasetError(
            f"no local data: pass --data DIR, set MODELARB_DATA to a copy of the {name} data, "
            f"or run `modelarb data pull {name}`"
        )
    return root / domain if (root / domain).is_dir() else root


def resolve_dataset_path(path: Path) -> Path | None:
    """`<dataset>/<subpath>` (e.g. `computational-arbitrage/swebench`) in the local copy of a registered dataset.

    None when the first part names no registered dataset; the local copy is `$MODELARB_DATA`
    if set, else the pulled cache, and a clear error says how to get one when there is none.
    """
    from modelarb.data.registry import DATASETS

    parts = path.parts
    if not parts or parts[0] not in DATASETS or path.is_absolute():
        return None
    root = local_copy(parts[0])
    if root is None:
        raise DatasetError(
            f"{path}: no local copy of the {parts[0]} data; set MODELARB_DATA to a copy "
            f"or run `modelarb data pull {parts[0]}`"
        )
    return root.joinpath(*parts[1:])
