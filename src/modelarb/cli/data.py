"""`modelarb data ...`: download, list, locate and verify registered datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.text import Text

from modelarb.cli.output import console, console_err
from modelarb.data.locate import DEFAULT_DATASET, dataset_dir, local_copy
from modelarb.data.registry import DATASETS, dataset
from modelarb.errors import DatasetError

data_app = typer.Typer(name="data", help="Registered datasets: download, list, locate, verify.", no_args_is_help=True)


@data_app.command()
def pull(
    name: Annotated[str, typer.Argument(help="Dataset to download (see `modelarb data list`).")] = DEFAULT_DATASET,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Fetch each file from URL/<path> instead of upstream.", show_default="$MODELARB_DATASET_URL"
        ),
    ] = None,
) -> None:
    """Download a dataset into the cache, checking every file against its pinned SHA-256 sum."""
    from modelarb.data import download

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console_err,
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=None)

        def show(event: download.FileProgress) -> None:
            label = f"[{event.index + 1}/{event.count}] {event.relpath}"
            bar.update(task, description=label, completed=event.received, total=event.size)

        folder = download.pull(name, base_url=url, progress=show)
    console.print(f"{name}: {len(dataset(name).files)} files verified in {folder}", highlight=False)


@data_app.command("list")
def list_datasets() -> None:
    """List the registered datasets, and whether and where each has a local copy."""
    for name, spec in DATASETS.items():
        copy = local_copy(name)
        folder = dataset_dir(name)
        have = sum((folder / relpath).is_file() for relpath in spec.files)
        if copy is not None and copy != folder:
            where = f"local copy in $MODELARB_DATA: {copy}"
        elif have == len(spec.files):
            where = f"pulled: {folder}"
        else:
            where = f"not pulled ({have} of {len(spec.files)} files in {folder}); `modelarb data pull {name}`"
        console.print(Text(f"{name}: {spec.description}; {len(spec.files)} files", style="bold"))
        console.print(Text(f"  {where}"))


@data_app.command()
def path(name: Annotated[str, typer.Argument(help="A registered dataset.")]) -> None:
    """Print the local folder of a dataset: $MODELARB_DATA if set, else the pulled cache."""
    dataset(name)
    copy = local_copy(name)
    if copy is not None:
        if not copy.is_dir():
            raise DatasetError(f"MODELARB_DATA is {copy}, which is not a folder; point it at a copy of {name}")
        typer.echo(str(copy))
        return
    folder = dataset_dir(name)
    missing = [relpath for relpath in dataset(name).files if not (folder / relpath).is_file()]
    if missing:
        raise DatasetError(
            f"{name} is not pulled ({len(missing)} of {len(dataset(name).files)} files missing in {folder}); "
            f"run `modelarb data pull {name}`"
        )
    typer.echo(str(folder))


@data_app.command()
def verify(
    name: Annotated[str, typer.Argument(help="A registered dataset.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Local copy to check.", show_default="$MODELARB_DATA, else the cache", file_okay=False
        ),
    ] = None,
) -> None:
    """Check a local copy of a dataset against its pinned SHA-256 sums."""
    from modelarb.data import download

    folder = data or local_copy(name) or dataset_dir(name)
    problems = download.verify(name, folder)
    if problems:
        raise DatasetError(
            f"{folder}: {len(problems)} file(s) do not match the pinned sums of {name}:\n  " + "\n  ".join(problems)
        )
    console.print(f"{folder}: all {len(dataset(name).files)} files of {name} match their pinned sums", highlight=False)
