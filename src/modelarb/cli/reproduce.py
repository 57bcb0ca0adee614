"""`modelarb reproduce`: every experiment of the paper on its data, written out as a report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from modelarb import __version__
from modelarb.cli import options
from modelarb.cli.output import console, console_err, table
from modelarb.errors import ModelarbError

if TYPE_CHECKING:
    from modelarb.core.search import Scheme
    from modelarb.report.metrics import MetricRow


def paper_data_root(data: Path | None) -> Path:
    """The paper's data folder: --data, else $MODELARB_DATA, else the cache, else downloaded into the cache."""
    from modelarb.data import download
    from modelarb.data.locate import DEFAULT_DATASET, dataset_dir, local_copy

    if data is not None:
        return data
    local = local_copy(DEFAULT_DATASET)
    if local is not None:
        return local
    folder = dataset_dir(DEFAULT_DATASET)
    console_err.print(f"no local copy of the paper's data: downloading it into {folder} (checksums verified)")
    return download.pull(DEFAULT_DATASET)  # without network: one error saying to pass --data or set MODELARB_DATA


def _advance(progress: Progress, task: TaskID) -> Callable[[int], None]:
    return lambda steps: progress.advance(task, steps)


def _verdict(row: MetricRow) -> str | Text:
    if row.within:
        return "yes"
    return "no (bootstraps)" if row.metric.bootstrap else "no (known)" if row.metric.known else Text("no", style="red")


def reproduce(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The paper's data folder, holding swebench/ and lean/.",
            show_default="$MODELARB_DATA, else the pulled copy (downloaded if missing)",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the report into.", callback=options.output_folder)
    ] = Path("modelarb-report"),
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme", help="How to search: paper (the paper's grids, its numbers) or exact (exact curves and caps)."
        ),
    ] = "paper",
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Run 100 bootstraps instead of 1000: faster, and the bootstrapped means scatter more."
        ),
    ] = False,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Run bootstraps on this Dask scheduler (tcp://HOST:PORT).")
    ] = None,
) -> None:
    """Reproduce the paper: figures (PNG, SVG), metrics.json and report.html in --out.

    metrics.json holds, for every headline number, ours, the paper's, the tolerance and whether
    ours is within it; report.html shows the same table, then each experiment's figure.
    """
    # the experiments pull in matplotlib and every analysis: import them only when reproducing
    from modelarb.core.search import SCHEMES
    from modelarb.experiments import EXPERIMENTS, Context, PaperData, Settings
    from modelarb.report.build import write_report
    from modelarb.robust import executor_for

    if scheme not in SCHEMES:
        raise ModelarbError(f"--scheme {scheme!r} is not a scheme; choose one of {', '.join(SCHEMES)}")
    if cluster is not None:
        executor_for(cluster=cluster, check=True)  # a bad or silent address fails now, before any experiment
    started = time.perf_counter()
    paper = PaperData(paper_data_root(data))
    settings = Settings(scheme=cast("Scheme", scheme), cluster=cluster)
    settings = settings.quick() if quick else settings
    context = Context(paper, settings)
    results: dict[str, Any] = {}
    columns = (TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console_err) as progress:
        tasks = {e.name: progress.add_task(e.title, total=e.steps(settings), start=False) for e in EXPERIMENTS}
        drawing = progress.add_task("Figures and report", total=len(EXPERIMENTS), start=False)
        for experiment in EXPERIMENTS:
            task = tasks[experiment.name]
            progress.start_task(task)
            results[experiment.name] = experiment.run(context, _advance(progress, task))
            progress.update(task, completed=experiment.steps(settings))
            progress.stop_task(task)
        progress.start_task(drawing)
        run = {
            "scheme": scheme,
            "quick": quick,
            "data": str(paper.root),
            "bootstraps": settings.bootstraps,
            "pair_levels": settings.pair_levels,
            "market_levels": settings.market_levels,
            "cluster": cluster,
            "modelarb": __version__,
        }
        summary = (
            f"modelarb {__version__} · scheme {scheme}{' · --quick' if quick else ''} · "
            f"{settings.bootstraps} bootstraps · data {paper.root}"
        ) + (
            " · the paper's numbers come from its grid scheme: exact curves and caps differ from them by design"
            if scheme != "paper"
            else ""
        )
        report = write_report(out, results, run, summary, lambda name: progress.advance(drawing, 1))
    within = sum(r.within for r in report.rows)
    table(
        f"{within} of {len(report.rows)} headline numbers within tolerance (full descriptions in report.html)",
        ["metric", "paper", "ours", "tolerance", "within"],
        [
            [r.metric.key, r.metric.show_paper(), r.metric.show(r.ours), r.metric.show_tolerance(), _verdict(r)]
            for r in report.rows
        ],
    )
    console.print(f"report: {report.html.resolve()}", highlight=False)
    console.print(f"total time: {time.perf_counter() - started:.1f} s", highlight=False)
