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


def cached_dataset(domain: str, name: str = DEFAULT_DATASET) -> Path:
    """The cached copy of `name` (its `domain` subfolder); a clear error if it was never pulled."""
    folder = dataset_dir(name)
    if not (folder / domain).is_dir():
        raise DatasetError(
            f"no local data: pass --data DIR, set MODELARB_DATA to a copy of the {name} data, "
            f"or run `modelarb data pull {name}`"
        )
    return folder / domain
