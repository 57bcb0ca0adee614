"""Domains: which instances a fit sample is drawn from, or a cascade is evaluated on.

A domain spec is `all`, a repository name (from the instance ids, e.g. `django`), a
name from a user mapping (instance -> domain), `prefix:<text>` (instance ids starting
with text), or `not-<spec>`, the complement of another spec.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError

ALL = "all"
NOT = "not-"
PREFIX = "prefix:"


def domain_mask(outcomes: Outcomes, spec: str, mapping: Mapping[str, str] | None = None) -> NDArray[np.bool_]:
    """Boolean mask over `outcomes.instances` of the domain `spec`; an empty domain is an error."""
    mask = _mask(outcomes, spec.strip(), mapping or {})
    if not mask.any():
        raise AnalysisError(f"domain {spec!r} has no instances in this market ({outcomes.n_instances} instances)")
    return mask


def known_domains(outcomes: Outcomes, mapping: Mapping[str, str] | None = None) -> list[str]:
    """Domain names this market knows: `all`, the mapping's names, then the repositories."""
    names = [ALL, *sorted(set((mapping or {}).values()))]
    names += [r for r in sorted(set(outcomes.repositories.tolist())) if r and r not in names]
    return names


def _mask(outcomes: Outcomes, spec: str, mapping: Mapping[str, str]) -> NDArray[np.bool_]:
    if spec == ALL:
        return np.ones(outcomes.n_instances, dtype=bool)
    if spec.startswith(PREFIX):
        text = spec[len(PREFIX) :]
        if not text:
            raise AnalysisError("domain 'prefix:' needs a text, e.g. prefix:django__")
        return np.char.startswith(outcomes.instances.astype(str), text)
    if spec in mapping.values():
        labels = np.array([mapping.get(str(i), "") for i in outcomes.instances])
        return labels == spec
    if spec and spec in outcomes.repositories:
        return outcomes.repositories == spec
    if spec.startswith(NOT) and len(spec) > len(NOT):
        return ~_mask(outcomes, spec[len(NOT) :], mapping)
    raise AnalysisError(
        f"unknown domain {spec!r}; use one of {', '.join(known_domains(outcomes, mapping))}, "
        "not-<domain> or prefix:<text>"
    )
