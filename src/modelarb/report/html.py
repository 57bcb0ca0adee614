"""report.html: one self-contained page — summary table of metrics, then a section per experiment."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from modelarb.report.metrics import MetricRow

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.2em 2em 3em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.1em; }
.run { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.92em; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.32em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f5; }
td.yes { color: #11772b; font-weight: 600; }
td.no { color: #b00020; font-weight: 600; }
td.boot { color: #8a6d00; font-weight: 600; }
.count { font-size: 1.05em; margin: 0.4em 0; }
section { border-top: 2px solid #e6e6ea; margin-top: 2em; padding-top: 0.6em; }
section p { margin: 0.25em 0; }
section img { width: 100%; height: auto; margin-top: 0.6em; border: 1px solid #eee; }
.files { font-size: 0.85em; color: #555; }
.note { font-size: 0.85em; color: #555; }
"""


@dataclass(frozen=True)
class FigureSection:
    """A rendered section: its title and explanation, its figure's PNG bytes and file names."""

    name: str
    title: str
    explanation: tuple[str, str]
    png: bytes
    files: tuple[str, ...]


def _verdict(row: MetricRow) -> tuple[str, str]:
    if row.within:
        return "yes", "yes"
    if row.metric.bootstrap:
        return "no †", "boot"
    if row.metric.known:
        return "no ‡", "boot"
    return "no", "no"


def summary_table(rows: Sequence[MetricRow]) -> str:
    """The metrics table: metric, paper, ours, tolerance, within tolerance yes/no."""
    body = []
    for row in rows:
        word, css = _verdict(row)
        m = row.metric
        mark = " †" if m.bootstrap else " ‡" if m.known else ""
        title = f' title="{escape(m.known)}"' if m.known else ""
        body.append(
            f"<tr><td{title}>{escape(m.description)}{mark}</td><td>{escape(m.show_paper())}</td>"
            f"<td>{escape(m.show(row.ours))}</td><td>{escape(m.show_tolerance())}</td>"
            f'<td class="{css}">{word}</td></tr>'
        )
    head = "<tr><th>metric</th><th>paper</th><th>ours</th><th>tolerance</th><th>within tolerance</th></tr>"
    return f'<table class="summary">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table>"


def _section(part: FigureSection) -> str:
    src = "data:image/png;base64," + base64.b64encode(part.png).decode("ascii")
    links = " · ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in part.files)
    lines = "".join(f"<p>{escape(line)}</p>" for line in part.explanation)
    return (
        f'<section id="{escape(part.name)}">\n<h2>{escape(part.title)}</h2>\n{lines}\n'
        f'<img src="{src}" alt="{escape(part.title)}" data-file="{escape(part.files[0])}">\n'
        f'<p class="files">figure files: {links}</p>\n</section>'
    )


def render(title: str, run: str, rows: Sequence[MetricRow], sections: Sequence[FigureSection]) -> str:
    """The whole page; figures are embedded as base64 PNG, so it needs no other file."""
    within = sum(r.within for r in rows)
    notes = [
        "† the tolerance depends on the bootstrap count: with fewer bootstraps than the paper's 1000 (as in "
        "--quick), these means scatter more and may miss it."
    ]
    notes += sorted({f"‡ {r.metric.known}." for r in rows if r.metric.known})
    contents = "".join(f'<li><a href="#{escape(s.name)}">{escape(s.title)}</a></li>' for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{escape(title)}</h1>\n<p class="run">{escape(run)}</p>\n'
        f'<h2>Summary</h2>\n<p class="count">{within} of {len(rows)} headline numbers within tolerance.</p>\n'
        + summary_table(rows)
        + "".join(f'\n<p class="note">{escape(note)}</p>' for note in notes)
        + f"\n<h2>Experiments</h2>\n<ol>{contents}</ol>\n"
        + "\n".join(_section(s) for s in sections)
        + "\n</body>\n</html>\n"
    )
