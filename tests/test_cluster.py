"""Distributed execution (issue 11): a search split by first-stage provider, bootstraps and competition on
one process, local processes and a real Dask `LocalCluster`, with the same numbers everywhere."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CliResult
from modelarb.core import boxes
from modelarb.core.exact import exact_hull, exact_search, warm_start
from modelarb.core.partition import Partition, first_stage_parts, partitioned_search
from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError
from modelarb.parallel import DaskExecutor, Executor, ProcessExecutor, SerialExecutor, executor_for
from synthetic_markets import leaderboard as leaderboard_files
from test_properties import markets
from test_robust import small_run

distributed = pytest.importorskip("distributed")
Run = Callable[..., CliResult]


def market(providers: int, instances: int, seed: int, attempts: int) -> Outcomes:
    """Correlated difficulty, per-attempt costs over three orders of magnitude (stronger models dearer)."""
    rng = np.random.default_rng(seed)
    difficulty, skill = rng.normal(0, 1.5, instances), rng.normal(0, 1, providers)
    base = 10.0 ** (-4 + 3 * np.argsort(np.argsort(skill + rng.normal(0, 0.7, providers))) / (providers - 1))
    return Outcomes(
        instances=np.array([f"t{i}" for i in range(instances)]),
        providers=tuple(f"m{p}" for p in range(providers)),
        n=np.full((instances, providers), attempts),
        s=rng.binomial(attempts, 1 / (1 + np.exp(-(skill[None, :] - difficulty[:, None])))),
        cost=base[None, :] * rng.lognormal(0, 0.5, instances)[:, None],
    )


EXHAUSTIVE = market(5, 60, seed=1, attempts=1)  # depth 3: 1.2 M cascades, exhaustive
BRANCHED = market(6, 80, seed=2, attempts=1)  # depth 3: branch and bound, proven
BEAM = market(5, 40, seed=3, attempts=3)  # every depth: a beam search


def levels_of(outcomes: Outcomes, count: int = 200) -> np.ndarray:
    best = best_solve_rate(outcomes)
    return np.linspace(best / 10, best, count)


def assert_identical(a: ArbitrageResult, b: ArbitrageResult) -> None:
    """Bit for bit: the same numbers, cascades and method."""
    assert a.cascades == b.cascades and a.method == b.method
    for field in ("arbitrage_cost", "spend", "cascade_at", "partner_at", "partner_weight", "provider_costs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A real two-worker Dask cluster on loopback TCP (worker threads in this process), closed after the module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as local:
        yield local.scheduler_address


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# splitting the search


def test_parts_cover_every_provider_once_balanced_by_steps() -> None:
    groups = first_stage_parts(BRANCHED, 4)
    assert len(groups) == 4 and sorted(p for g in groups for p in g) == list(range(6))
    assert first_stage_parts(BRANCHED, 4) == groups and all(list(g) == sorted(g) for g in groups)
    singles = first_stage_parts(BRANCHED, 50)
    assert len(singles) == 6 and sorted(singles) == [(p,) for p in range(6)]
    with pytest.raises(AnalysisError, match="at least one part"):
        first_stage_parts(BRANCHED, 0)


def test_a_part_holds_only_cascades_starting_with_its_providers() -> None:
    part = exact_hull(EXHAUSTIVE, top=1.0, max_depth=3, first=[1, 3])
    assert set(part.points.stages[:, 0].tolist()) <= {1, 3, -1} and "first stage m1 or m3" in part.method
    with pytest.raises(AnalysisError, match="first-stage providers"):
        exact_hull(EXHAUSTIVE, top=1.0, first=[5])


@pytest.mark.parametrize(
    ("outcomes", "branch", "kind"), [(EXHAUSTIVE, None, "exhaustive"), (BRANCHED, True, "branch and bound")]
)
@pytest.mark.parametrize("parts", [2, 8])
def test_split_proven_search_equals_the_whole_search(
    outcomes: Outcomes, branch: bool | None, kind: str, parts: int
) -> None:
    levels = levels_of(outcomes)
    whole = exact_search(outcomes, levels, max_depth=3, branch=branch)
    split = partitioned_search(outcomes, levels, Partition(SerialExecutor(), parts), max_depth=3, branch=branch)
    assert kind in whole.method and "beam" not in whole.method and "every part proven" in split.method
    assert split.cascades == whole.cascades
    np.testing.assert_array_equal(split.cascade_at, whole.cascade_at)
    # BLAS may sum a prefix's spend on hopeless instances in another order when fewer prefixes are swept at once
    np.testing.assert_allclose(split.arbitrage_cost, whole.arbitrage_cost, rtol=1e-13, atol=0)
    np.testing.assert_allclose(split.spend, whole.spend, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("parts", [2, 8])
def test_a_split_proofs_parts_start_from_one_shared_hull(parts: int) -> None:
    """Made once, the whole search's warm-up hull lets every part close boxes against the whole market: the parts
    evaluate no more than the whole proof does, give or take a tenth (each from its own start: 1.34× and 1.70×)."""
    levels = levels_of(BRANCHED)
    whole = exact_search(BRANCHED, levels, max_depth=3, branch=True)
    split = partitioned_search(BRANCHED, levels, Partition(SerialExecutor(), parts), max_depth=3, branch=True)
    assert "a shared start's" in split.method and "from a shared polished warm-up hull" in split.method

    def evaluated(method: str) -> int:
        counted = re.search(r"([\d,]+) (?:of [\d.e+]+ )?cascades evaluated", method)
        assert counted is not None, method
        return int(counted.group(1).replace(",", ""))

    assert evaluated(split.method) <= 1.1 * evaluated(whole.method)


def test_a_part_that_gives_up_from_a_shared_start_is_polished_within_the_starts_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deeper than 3 stages a given-up search's polish may evaluate a fifth of what its warm-up did; a part that
    did not make its own warm-up reads that from the shared start."""
    monkeypatch.setattr(boxes, "BOX_CELLS", 1_000)
    shared = warm_start(BRANCHED, top=0.8, max_depth=4, branch=True)
    assert shared is not None and shared[1] > 0
    part = exact_hull(BRANCHED, top=0.8, max_depth=4, branch=True, first=[0], start=shared)
    assert "outgrew its budget" in part.method and not part.proven
    assert part.evaluated > 0  # its polish ran: with no budget of its own it would evaluate nothing


@settings(max_examples=30, deadline=None)
@given(markets(providers=(2, 4), instances=6, attempts=4), st.integers(1, 4), st.sampled_from([None, 2]))
def test_split_search_equals_the_whole_on_small_markets(outcomes: Outcomes, parts: int, depth: int | None) -> None:
    best = best_solve_rate(outcomes)
    levels = np.linspace(best / 10, best, 25)
    whole = exact_search(outcomes, levels, max_depth=depth)
    if "beam" in whole.method:
        return
    split = partitioned_search(outcomes, levels, Partition(SerialExecutor(), parts), max_depth=depth)
    np.testing.assert_allclose(split.arbitrage_cost, whole.arbitrage_cost, rtol=1e-12, atol=1e-15)


# the same numbers on every executor


def executors(address: str) -> list[Executor]:
    return [SerialExecutor(), ProcessExecutor(2), DaskExecutor(address)]


@pytest.mark.parametrize(("outcomes", "depth"), [(EXHAUSTIVE, 3), (BEAM, None)])
def test_split_search_is_the_same_on_every_executor(cluster: str, outcomes: Outcomes, depth: int | None) -> None:
    levels = levels_of(outcomes)
    serial, *others = [
        partitioned_search(outcomes, levels, Partition(executor, 4), max_depth=depth) for executor in executors(cluster)
    ]
    for other in others:
        assert_identical(other, serial)
    if depth is None:  # a beam: split, it keeps its width per part
        assert "beam" in serial.method and "not exhaustive" in serial.method


def test_bootstraps_are_the_same_on_the_cluster(cluster: str) -> None:
    serial, dask = small_run(SerialExecutor()), small_run(DaskExecutor(cluster), chunk_size=3)
    for field in ("margins", "first_caps", "draws"):
        np.testing.assert_array_equal(getattr(dask, field), getattr(serial, field))


def test_cluster_addresses_are_checked_before_any_work(cluster: str) -> None:
    executor_for(cluster=cluster, check=True)
    port = closed_port()
    with pytest.raises(AnalysisError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        executor_for(cluster=f"tcp://127.0.0.1:{port}", check=True)
    with pytest.raises(AnalysisError, match="has no port"):
        executor_for(cluster="tcp://127.0.0.1", check=True)


# the CLI


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return leaderboard_files(tmp_path_factory.mktemp("cluster") / "market", providers=6, instances=50, seed=4)


def run_json(run_cli: Run, tmp_path: Path, name: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    result = run_cli(*args, "--json", str(out))
    assert result.code == 0, result.err
    payload: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return payload


def test_cli_arbitrage_on_the_cluster_equals_local_runs(
    cluster: str, folder: Path, tmp_path: Path, run_cli: Run
) -> None:
    args = ("arbitrage", "--data", str(folder), "--max-depth", "2", "--folds", "0")
    whole = run_json(run_cli, tmp_path, "whole", *args)
    one = run_json(run_cli, tmp_path, "one", *args, "--workers", "1")
    dask = run_json(run_cli, tmp_path, "dask", *args, "--cluster", cluster)
    assert dask == one and "partitioned search: 6 parts" in dask["method"]
    assert dask["cascades"] == whole["cascades"] and dask["cascade_at"] == whole["cascade_at"]
    np.testing.assert_allclose(dask["arbitrage_cost"], whole["arbitrage_cost"], rtol=1e-13)


def test_cli_compete_sweep_is_the_same_everywhere(cluster: str, folder: Path, tmp_path: Path, run_cli: Run) -> None:
    rival = ("--rival-providers", "model-00,model-03,model-05")
    args = ("market", "compete", "--data", str(folder), "--max-depth", "2", *rival, "--parts", "3")
    one = run_json(run_cli, tmp_path, "one", *args, "--workers", "1")
    two = run_json(run_cli, tmp_path, "two", *args, "--workers", "2")
    dask = run_json(run_cli, tmp_path, "dask", *args, "--cluster", cluster)
    assert one == two == dask and one["names"] == ["arbitrageur", "rival"]


@pytest.mark.parametrize(
    "command",
    [
        ("arbitrage",),
        ("market", "revenue"),
        ("market", "compete"),
        ("market", "entry", "--entrant", "model-05"),
        ("robust", "-p", "model-00,model-05"),
    ],
)
def test_cli_unreachable_cluster_is_one_error(folder: Path, run_cli: Run, command: tuple[str, ...]) -> None:
    address = f"tcp://127.0.0.1:{closed_port()}"
    result = run_cli(*command, "--data", str(folder), "--cluster", address)
    assert result.code == 2 and f"cannot reach the Dask scheduler at {address}" in result.err
    assert result.err.count("error:") == 1 and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheme", "paper", "-p", "model-00,model-05", "--workers", "2"], "split the exact scheme's search"),
        (["--parts", "3"], "--parts splits a search run with --workers"),
        (["--workers", "0"], "--workers"),
        (["--cluster", "localhost:8786"], "not a scheduler address"),
    ],
)
def test_cli_bad_split_options_are_one_error(folder: Path, run_cli: Run, args: list[str], message: str) -> None:
    result = run_cli("arbitrage", "--data", str(folder), *args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
