"""Synthetic markets of the shapes issue 10 names, written as the paper's JSONL layout in test code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _write(folder: Path, name: str, rows: list[dict[str, object]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def leaderboard(folder: Path, providers: int = 30, instances: int = 120, seed: int = 0) -> Path:
    """One attempt per instance and provider; per-instance costs from $0.001 to $5 (log-uniform by provider tier);
    stronger providers cost more, instances share a difficulty."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(instances)
    for p in range(providers):
        skill = 0.15 + 0.7 * p / (providers - 1)
        tier = -3 + np.log10(5000) * p / (providers - 1)  # 10^-3 … 5 dollars
        rows = [
            {
                "id": f"task-{i}",
                "mean_cost": float(10 ** (tier + rng.uniform(-0.3, 0.3)) if p else 0.001 * rng.uniform(1, 2)),
                "attempts": [int(rng.random() < skill * (1.3 - difficulty[i]))],
            }
            for i in range(instances)
        ]
        for row in rows:
            row["mean_cost"] = float(np.clip(row["mean_cost"], 0.001, 5.0))
        _write(folder, f"model-{p:02d}", rows)
    return folder


def attempts_market(folder: Path, instances: int = 60, seed: int = 1) -> Path:
    """A theorem-proving market priced in attempts (every attempt costs 1): a weak model with many
    attempts and a strong one with fewer."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(instances)
    for name, skill, n in (("prover-small", 0.25, 64), ("prover-large", 0.6, 16)):
        rows = [
            {
                "id": f"thm-{i}",
                "mean_cost": 1.0,
                "cost_unit": "attempts",
                "attempts": (rng.random(n) < skill * (1 - difficulty[i]) ** 2).astype(int).tolist(),
            }
            for i in range(instances)
        ]
        _write(folder, name, rows)
    return folder


def dear_market(folder: Path, instances: int = 60, seed: int = 2) -> Path:
    """A dollar market whose attempts cost up to $10: a cheap model ($0.05–0.2) and an agentic
    large model ($2–10) with pass@1 about 0.68."""
    rng = np.random.default_rng(seed)
    for name, skill, low, high, n in (("small", 0.3, 0.05, 0.2, 8), ("agent", 0.68, 2.0, 10.0, 4)):
        rows = [
            {
                "id": f"repo__repo-{i}",
                "mean_cost": float(rng.uniform(low, high)),
                "attempts": (rng.random(n) < skill).astype(int).tolist(),
            }
            for i in range(instances)
        ]
        _write(folder, name, rows)
    return folder
