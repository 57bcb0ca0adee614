"""`Outcomes`: the recorded attempts of one market, as immutable numpy arrays."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from modelarb.errors import DataError

USD = "USD"

_SWEBENCH_ID = re.compile(r"^(?P<owner>[^_]+(?:_[^_]+)*)__(?P<repo>.+)-(?P<number>\d+)$")


def repository_of(instance_id: str) -> str:
    """The repository of a SWE-bench id (`django__django-11087` -> `django`), else ''."""
    match = _SWEBENCH_ID.match(instance_id)
    return match.group("repo") if match else ""


def _frozen(array: NDArray[Any]) -> NDArray[Any]:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Recorded attempts of providers on instances (instances x providers).

    `n[i, p]` attempts with `s[i, p]` successes, each attempt costing `cost[i, p]`
    on average, in `unit`. Where the source kept the attempt sequence, `attempts`
    holds every attempt of every cell back to back (provider-major within an
    instance, in row-major cell order) and `offsets[i, p]` is where cell (i, p) starts.
    `dataset` names the registered dataset every provider's file belongs to (matched
    by checksum), else None.
    """

    instances: NDArray[np.str_]
    providers: tuple[str, ...]
    n: NDArray[np.int64]
    s: NDArray[np.int64]
    cost: NDArray[np.float64]
    unit: str = USD
    attempts: NDArray[np.bool_] | None = None
    offsets: NDArray[np.int64] | None = None
    source: str = ""
    repositories: NDArray[np.str_] = field(default=cast("NDArray[np.str_]", None))
    dataset: str | None = None

    def __post_init__(self) -> None:
        shape = (len(self.instances), len(self.providers))
        for name in ("n", "s", "cost"):
            if getattr(self, name).shape != shape:
                raise DataError(f"Outcomes.{name} has shape {getattr(self, name).shape}, expected {shape}")
        if len(set(self.providers)) != len(self.providers):
            raise DataError(f"duplicate provider names in {self.providers}")
        if (self.attempts is None) != (self.offsets is None):
            raise DataError("Outcomes.attempts and Outcomes.offsets go together")
        if self.repositories is None:
            object.__setattr__(self, "repositories", np.array([repository_of(i) for i in self.instances], dtype=str))
        for name in ("instances", "n", "s", "cost", "attempts", "offsets", "repositories"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))

    @property
    def n_instances(self) -> int:
        return len(self.instances)

    @property
    def n_providers(self) -> int:
        return len(self.providers)

    @property
    def pass_at_1(self) -> NDArray[np.float64]:
        """s / n per cell."""
        return self.s / self.n

    def provider_index(self, names: Iterable[str]) -> list[int]:
        """Column indices of named providers; an unknown name lists the known ones."""
        index = {p: k for k, p in enumerate(self.providers)}
        unknown = [name for name in names if name not in index]
        if unknown:
            raise DataError(
                f"unknown provider {', '.join(map(repr, unknown))}; known providers: {', '.join(self.providers)}"
            )
        return [index[name] for name in names]

    def attempt_sequence(self, instance: int, provider: int) -> NDArray[np.bool_]:
        """The recorded attempts of one cell, in recorded order."""
        if self.attempts is None or self.offsets is None:
            raise DataError(f"the source {self.source or 'of this market'} kept no attempt sequences")
        start = int(self.offsets[instance, provider])
        return self.attempts[start : start + int(self.n[instance, provider])]

    def select(
        self,
        providers: Sequence[str] | None = None,
        instances: Callable[[str], bool] | Iterable[str] | NDArray[np.bool_] | None = None,
    ) -> Outcomes:
        """A sub-market: some providers (in the given order) and some instances.

        `instances` is a predicate on the id, a collection of ids, or a boolean mask.
        """
        cols = np.arange(self.n_providers) if providers is None else np.array(self.provider_index(providers))
        if cols.size == 0:
            raise DataError("the selection keeps no providers")
        if instances is None:
            rows = np.arange(self.n_instances)
        elif isinstance(instances, np.ndarray) and instances.dtype == bool:
            if instances.shape != (self.n_instances,):
                raise DataError(f"an instance mask needs {self.n_instances} values, got shape {instances.shape}")
            rows = np.flatnonzero(instances)
        elif callable(instances):
            rows = np.array([k for k, i in enumerate(self.instances) if instances(str(i))], dtype=np.int64)
        else:
            wanted = set(instances)
            missing = wanted.difference(self.instances.tolist())
            if missing:
                raise DataError(f"unknown instance ids: {', '.join(sorted(missing)[:5])}")
            rows = np.flatnonzero(np.isin(self.instances, list(wanted)))
        if rows.size == 0:
            raise DataError("the selection keeps no instances")
        grid = np.ix_(rows, cols)
        attempts = offsets = None
        if self.attempts is not None and self.offsets is not None:
            n = self.n[grid]
            starts = self.offsets[grid].ravel()
            lengths = n.ravel()
            new_offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
            gather = np.repeat(starts - new_offsets, lengths) + np.arange(int(lengths.sum()))
            attempts = self.attempts[gather]
            offsets = new_offsets.reshape(n.shape)
        return Outcomes(
            instances=self.instances[rows],
            providers=tuple(self.providers[int(c)] for c in cols),
            n=self.n[grid],
            s=self.s[grid],
            cost=self.cost[grid],
            unit=self.unit,
            attempts=attempts,
            offsets=offsets,
            source=self.source,
            repositories=self.repositories[rows],
            dataset=self.dataset,
        )

    def describe(self) -> list[dict[str, Any]]:
        """Per provider: instances, total attempts, mean pass@1, mean cost per attempt."""
        return [
            {
                "provider": name,
                "instances": self.n_instances,
                "attempts": int(self.n[:, p].sum()),
                "mean_pass_at_1": float(self.pass_at_1[:, p].mean()),
                "mean_cost_per_attempt": float(self.cost[:, p].mean()),
                "cost_unit": self.unit,
            }
            for p, name in enumerate(self.providers)
        ]

    def __repr__(self) -> str:
        return (
            f"Outcomes({self.n_instances} instances x {len(self.providers)} providers "
            f"[{', '.join(self.providers)}], unit={self.unit!r})"
        )


def from_cells(
    cells: dict[str, dict[str, tuple[NDArray[np.bool_], float]]],
    providers: Sequence[str],
    unit: str,
    source: str,
    dataset: str | None = None,
) -> Outcomes:
    """Build Outcomes from {provider: {instance: (attempts, mean cost)}} over shared instances.

    The caller has validated every cell and chosen instances all providers share;
    instances keep the order of the first provider.
    """
    first = cells[providers[0]]
    ids = [i for i in first if all(i in cells[p] for p in providers)]
    if not ids:
        raise DataError(f"{source}: no instances are shared by the providers {', '.join(providers)}")
    n = np.empty((len(ids), len(providers)), dtype=np.int64)
    s = np.empty_like(n)
    cost = np.empty(n.shape, dtype=np.float64)
    chunks: list[NDArray[np.bool_]] = []
    for row, instance in enumerate(ids):
        for col, p in enumerate(providers):
            attempts, c = cells[p][instance]
            n[row, col] = attempts.size
            s[row, col] = int(attempts.sum())
            cost[row, col] = c
            chunks.append(attempts)
    lengths = n.ravel()
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64).reshape(n.shape)
    return Outcomes(
        instances=np.array(ids, dtype=str),
        providers=tuple(providers),
        n=n,
        s=s,
        cost=cost,
        unit=unit,
        attempts=np.concatenate(chunks).astype(bool),
        offsets=offsets,
        source=source,
        dataset=dataset,
    )
