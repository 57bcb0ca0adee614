"""Write a reproduction's report: figures (PNG and SVG), metrics.json and a self-contained report.html."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelarb.errors import ModelarbError
from modelarb.report import html
from modelarb.report.metrics import MetricRow, evaluate
from modelarb.report.sections import SECTIONS

FIGURES = "figures"
PNG_DPI = 110


@dataclass(frozen=True)
class Report:
    """What was written: the folder, the figure files, the metric rows."""

    folder: Path
    figures: tuple[Path, ...]
    rows: tuple[MetricRow, ...]

    @property
    def html(self) -> Path:
        return self.folder / "report.html"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.json"


def metrics_json(rows: list[MetricRow], run: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json: the run's settings, and every metric with ours, the paper's, the tolerance, within."""
    return {
        "run": dict(run),
        "within": sum(r.within for r in rows),
        "count": len(rows),
        "metrics": {r.metric.key: r.to_dict() for r in rows},
    }


def write_report(
    folder: Path,
    results: Mapping[str, Any],
    run: Mapping[str, Any],
    summary: str,
    drawn: Callable[[str], None] | None = None,
) -> Report:
    """Draw every experiment's figure, then write metrics.json and report.html into `folder`.

    `results` maps experiment names to results; `run` describes the run for metrics.json,
    `summary` in one line for the page; `drawn(name)` is called after each figure.
    """
    figures_dir = folder / FIGURES
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelarbError(f"cannot create the report folder {figures_dir}: {exc.strerror or exc}") from None
    values: dict[str, float] = {}
    parts: list[html.FigureSection] = []
    written: list[Path] = []
    for name, result in results.items():
        values.update(result.metrics())
        part = SECTIONS[name](result)
        png = io.BytesIO()
        part.figure.savefig(png, format="png", dpi=PNG_DPI)
        files = (figures_dir / f"{part.name}.png", figures_dir / f"{part.name}.svg")
        files[0].write_bytes(png.getvalue())
        part.figure.savefig(files[1], format="svg")
        written.extend(files)
        parts.append(
            html.FigureSection(
                part.name, part.title, part.explanation, png.getvalue(), tuple(f"{FIGURES}/{f.name}" for f in files)
            )
        )
        if drawn is not None:
            drawn(name)
    rows = evaluate(values)
    (folder / "metrics.json").write_text(json.dumps(metrics_json(rows, run), indent=2) + "\n", encoding="utf-8")
    page = html.render("modelarb: reproduction of “Computational Arbitrage in AI Model Markets”", summary, rows, parts)
    (folder / "report.html").write_text(page, encoding="utf-8")
    return Report(folder, tuple(written), tuple(rows))
