"""The benchmark suite: every workload of issue 11 in one command, one table.

    MODELARB_DATA=/path/to/computational-arbitrage python benchmarks/run.py [--only NAME,...] [--before SRC]

Each workload runs in its own process (so its peak RSS is its own) and reports its wall time (best of
`--repeat` for the quick ones), peak RSS, the answer it found, and the time of a straightforward
per-cascade implementation written here (benchmarks/baselines.py) on the same data in the same run:
timed on an evenly spaced sample of cascades and extrapolated to all of them when timing all would take
minutes (the table says so). `--before SRC` also runs every workload the older code can run with
PYTHONPATH=SRC (e.g. a `git archive` of an older commit's src/) and adds its time and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PAIR = ["gpt5mini", "deepseek"]
FOUR = ["minicoder4b", "qwen3-coder-30b", "gpt5mini", "deepseek"]
LEAN = ["kimina-1.7b", "kimina-8b", "kimina-72b"]
Report = dict[str, Any]


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def _best_with_cpu(run: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall time and best CPU time (process, user + system) of `repeat` runs, and the last answer."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        out = run()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return min(walls), min(cpus), out


def _market(data: Path, domain: str, providers: list[str]) -> Any:
    from modelarb.data import load_market

    return load_market(data / domain, providers)[0]


# --- workloads (run in the child process) ---


def paper_grid(data: Path, repeat: int, baseline: bool, which: str) -> Report:
    from modelarb.core import paper
    from modelarb.core.search import best_solve_rate, search

    domain, providers, low = {"pair": ("swebench", PAIR, 0.68), "four": ("swebench", FOUR, 0.40)}.get(
        which, ("lean", LEAN, 0.6)
    )
    outcomes = _market(data, domain, providers)
    count = 1000 if which == "pair" else 100
    levels = np.linspace(low, 0.9 if which == "lean" else best_solve_rate(outcomes, "paper"), count)
    seconds, cpu, result = _best_with_cpu(lambda: search(outcomes, levels, "paper"), repeat)
    report = {"seconds": seconds, "answer": f"max margin {100 * result.max_margin:.1f}% (CPU {cpu:.3g} s)"}
    if baseline:  # (not with --before: the baseline reads the current code's grid costs)
        from baselines import paper_per_cascade

        settings = paper.PaperSettings.for_unit(outcomes.unit)
        caps = settings.pair_caps() if which == "pair" else settings.stage_caps(len(providers))
        report |= paper_per_cascade(outcomes, levels, caps, settings.grid, None if which == "pair" else 150)
    return report


def exact_pair(data: Path, repeat: int, baseline: bool) -> Report:
    from baselines import exact_per_cascade
    from modelarb.core.search import best_solve_rate, search

    outcomes = _market(data, "swebench", PAIR)
    levels = np.linspace(0.68, best_solve_rate(outcomes), 1000)
    seconds, result = _best(lambda: search(outcomes, levels, "exact"), repeat)
    report = {"seconds": seconds, "answer": f"max margin {100 * result.max_margin:.1f}%"}
    if baseline:
        report |= exact_per_cascade(outcomes, 2, 400)
    return report


def leaderboard_search(providers: int, depth: int, baseline: bool, compare_depth: int | None) -> Report:
    from baselines import exact_per_cascade
    from markets import leaderboard
    from modelarb.core.exact import exact_search
    from modelarb.core.search import best_solve_rate

    outcomes = leaderboard(providers, 500)
    levels = np.linspace(0.3, best_solve_rate(outcomes), 100)
    proven = depth <= 3
    start, cpu = time.perf_counter(), time.process_time()
    result = exact_search(outcomes, levels, max_depth=depth, **({"branch": True} if proven else {}))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    counted = re.search(r"([\d,]+) of ([\d.e+]+) cascades", result.method)
    assert counted is not None, result.method
    evaluated, total = float(counted.group(1).replace(",", "")), float(counted.group(2))
    kind = "proven optimum" if "proven optimum" in result.method else "beam"
    answer = f"CPU {cpu:.3g} s; {kind}; {evaluated:.3g} of {total:.3g} cascades evaluated"
    report = {"seconds": seconds, "cpu_seconds": cpu, "answer": answer}
    if compare_depth is not None:  # beam against the proven optimum, on cascades of at most compare_depth stages
        same = compare_depth == depth and proven
        optimum = result if same else exact_search(outcomes, levels, max_depth=compare_depth, branch=True)
        beam = exact_search(outcomes, levels, max_depth=compare_depth, beam_width=64)
        with np.errstate(invalid="ignore"):
            gap = np.where(np.isfinite(optimum.arbitrage_cost), beam.arbitrage_cost / optimum.arbitrage_cost - 1, 0)
        report["answer"] += f"; beam (64 bins) vs proven at depth {compare_depth}: worst gap {100 * np.max(gap):.2f}%"
    if baseline:  # per cascade: every cascade a proof needs to cover, else (beam) the cascades it evaluated
        report |= exact_per_cascade(outcomes, depth, 300, total=total if kind == "proven optimum" else evaluated)
    return report


def beam_gaps() -> Report:
    """Beam search (64 bins) against the proven optimum on leaderboards that proofs reach (seeds 0–9): the worst
    relative excess of beam's C(u) at any level, over the markets whose branch and bound finished proven, per size,
    and the beams' CPU time."""
    from markets import leaderboard
    from modelarb.core.exact import exact_search
    from modelarb.core.search import best_solve_rate

    start, tried, proven, beam_cpu = time.perf_counter(), 0, 0, 0.0
    worst: dict[str, float] = {}
    for providers, instances, depth in (
        (5, 40, 3),
        (6, 100, 3),
        (8, 200, 3),
        (8, 200, 4),
        (8, 200, 2),
        (16, 500, 2),
        (25, 500, 2),
        (25, 500, 3),
    ):
        for seed in range(10):
            outcomes = leaderboard(providers, instances, seed)
            levels = np.linspace(0.3, best_solve_rate(outcomes), 100)
            optimum = exact_search(outcomes, levels, max_depth=depth, branch=True)
            tried += 1
            if "proven optimum" not in optimum.method:
                continue
            cpu = time.process_time()
            beam = exact_search(outcomes, levels, max_depth=depth, beam_width=64)
            beam_cpu += time.process_time() - cpu
            with np.errstate(invalid="ignore"):
                gap = np.where(np.isfinite(optimum.arbitrage_cost), beam.arbitrage_cost / optimum.arbitrage_cost - 1, 0)
            size = f"{providers}×{instances}/{depth}"
            worst[size] = max(worst.get(size, 0.0), float(np.max(gap)))
            proven += 1
    sizes = ", ".join(f"{size} {100 * gap:.3f}%" for size, gap in worst.items())
    answer = (
        f"worst gap {100 * max(worst.values(), default=0.0):.3f}% over {proven} of {tried} markets proven; "
        f"per size: {sizes}; beams' CPU {beam_cpu:.3g} s"
    )
    return {"seconds": time.perf_counter() - start, "answer": answer}


def economics(command: str) -> Report:
    """A market command's analysis at 24 providers; the answer adds its CPU time (with any child process's) and how
    many searches ran (in this process or a child: `parallel.alongside`)."""
    import tempfile

    from markets import leaderboard
    from modelarb import economics as econ
    from modelarb.core import search as search_module
    from modelarb.core.search import best_solve_rate

    handle, name = tempfile.mkstemp(suffix=".searches")  # one line per search, whichever process ran it
    os.close(handle)
    log = Path(name)
    exact_search = search_module.exact_search

    def counted(outcomes: Any, *args: Any, **kwargs: Any) -> Any:
        with log.open("a") as out:
            out.write(f"{outcomes.n_providers}\n")
        return exact_search(outcomes, *args, **kwargs)

    search_module.exact_search = counted
    outcomes = leaderboard(24, 500)
    names = list(outcomes.providers)
    start, cpu = time.perf_counter(), time.process_time() + _children_cpu()
    if command == "entry":
        incumbents = outcomes.select(names[:-1])
        levels = np.linspace(0.3, best_solve_rate(incumbents), 100)
        entry = econ.market_entry(outcomes, names[:-1], names[-1], levels, "exact")
        answer = f"entrant's share {100 * entry.average_with_after[-2]:.1f}%"
    elif command == "revenue":
        levels = np.linspace(0.3, best_solve_rate(outcomes), 100)
        result = econ.market_arbitrage(outcomes, levels, "exact")
        earned, _ = econ.revenue(result), econ.segmentation(result)
        answer = f"providers keep {100 * float(np.nanmean(earned.revenue_change)):.1f}% on average"
    else:  # a rival with every other provider, as `market compete --rival-providers` has it, in code that can
        levels = np.linspace(0.3, best_solve_rate(outcomes), 100)
        if hasattr(econ, "market_and_rival"):
            result, rival = econ.market_and_rival(outcomes, levels, names[::2], "exact")
        else:
            result = econ.market_arbitrage(outcomes, levels, "exact")
            rival = econ.cascade_cost(outcomes, levels, names[::2], "exact", market=result)
        race = econ.compete(np.stack([result.arbitrage_cost, rival]), result.market_price, ["a", "rival"])
        answer = f"settled margin {100 * float(np.mean(race.settled_margin)):.1f}% on average"
    seconds, cpu = time.perf_counter() - start, time.process_time() + _children_cpu() - cpu
    searches = log.read_text().split()
    log.unlink()
    sizes = " + ".join(searches)
    answer += f"; CPU {cpu:.3g} s; {len(searches)} search{'es' * (len(searches) > 1)} ({sizes} providers)"
    return {"seconds": seconds, "cpu_seconds": cpu, "answer": answer}


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes."""
    times = os.times()
    return times.children_user + times.children_system


def workloads(data: Path, repeat: int, baseline: bool) -> dict[str, Callable[[], Report]]:
    return {
        "paper pair": lambda: paper_grid(data, repeat, baseline, "pair"),
        "paper 4-provider grid": lambda: paper_grid(data, repeat, baseline, "four"),
        "paper Lean grid": lambda: paper_grid(data, repeat, baseline, "lean"),
        "exact pair": lambda: exact_pair(data, repeat, baseline),
        "25 providers, depth 3 (B&B)": lambda: leaderboard_search(25, 3, baseline, 3),
        "24 providers, depth 6 (beam: market revenue's search)": lambda: leaderboard_search(24, 6, baseline, None),
        "100 providers, depth 6 (beam)": lambda: leaderboard_search(100, 6, baseline, None),
        "300 providers, depth 6 (beam)": lambda: leaderboard_search(300, 6, baseline, None),
        "beam vs proven optimum, small leaderboards": beam_gaps,
        "market revenue, 24 providers": lambda: economics("revenue"),
        "market compete, 24 providers": lambda: economics("compete"),
        "market entry, 24 providers": lambda: economics("entry"),
    }


def child(name: str, data: Path, repeat: int, baseline: bool) -> None:
    sys.path.insert(0, str(HERE))
    report = workloads(data, repeat, baseline)[name]()
    report["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report))


# --- the table (parent process) ---


def run_child(name: str, args: argparse.Namespace, src: str | None, baseline: bool) -> Report | None:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, __file__, "--child", name, "--data", str(args.data), "--repeat", str(args.repeat)]
    done = subprocess.run(command + ([] if baseline else ["--no-baseline"]), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{name}{' (before)' if src else ''}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ["MODELARB_DATA"]) if "MODELARB_DATA" in os.environ else None
    parser.add_argument("--data", type=Path, default=default, help="the computational-arbitrage folder")
    parser.add_argument("--repeat", type=int, default=3, help="timings of the quick workloads; the best is kept")
    parser.add_argument("--only", help="comma-separated workload names (default: all)")
    parser.add_argument("--before", help="also run with PYTHONPATH=this src folder (older code) and compare")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.data is None:
        parser.error("give --data DIR (the computational-arbitrage folder) or set MODELARB_DATA")
    if args.child:
        child(args.child, args.data, args.repeat, not args.no_baseline)
        return
    names = list(workloads(args.data, args.repeat, False))
    if args.only:
        names = [n for n in names if any(part.strip() in n for part in args.only.split(","))]
    before_columns = "before | ratio | " if args.before else ""
    header = f"| workload | time | peak RSS | baseline (per-cascade) | ratio | {before_columns}answer |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = []
    for name in names:
        now = run_child(name, args, None, True)
        before = run_child(name, args, args.before, False) if args.before else None
        if now is None:
            continue
        base = now.get("baseline_seconds")
        cells = [
            name,
            f"{now['seconds']:.3g} s",
            f"{now['rss_mib']:.0f} MiB",
            "—" if base is None else f"{base:.3g} s" + (" (extrapolated)" if now.get("baseline_extrapolated") else ""),
            "—" if base is None else f"{base / now['seconds']:,.3g}×",
        ]
        if args.before:
            then = None if before is None else before["seconds"]
            cells += ["n/a", "—"] if then is None else [f"{then:.3g} s", f"{then / now['seconds']:.1f}×"]
        cells.append(now["answer"] + ("" if base is None else f"; baseline agrees to {now['baseline_diff']:.1e}"))
        print("| " + " | ".join(cells) + " |", flush=True)
        rows.append({"workload": name, "now": now, "before": before})
    print(f"\n{os.cpu_count()} CPUs · load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
