"""Distillation figure: pass@k and C_p(u) of each student checkpoint, and margin against distillation data."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from modelarb.experiments.distillation import DistillationSeries
from modelarb.report import style
from modelarb.report.metrics import paper_values
from modelarb.report.section import Section

DOMAINS = {"swebench": "SWE-bench Verified", "lean": "Lean (miniF2F)"}


def section(series: DistillationSeries) -> Section:
    r, spec = series.result, series.spec
    domain = DOMAINS.get(series.domain, series.domain)
    fig, (passk, costs, margin) = style.figure(f"Distillation on {domain}: students of {style.name(r.teacher)}", 3, 4.6)
    shades = colormaps["viridis"]
    tones = [shades(0.1 + 0.75 * s / max(len(r.students) - 1, 1)) for s in range(len(r.students))]
    labels = [f"student, {style.size_tick(size)} {spec.size_label.split()[-1]}" for size in spec.sizes]
    for s, (tone, label) in enumerate(zip(tones, labels, strict=True)):
        passk.plot(r.k, r.pass_at_k[s], color=tone, lw=1.5, label=label)
        costs.plot(series.levels, series.costs[s], color=tone, lw=1.5, label=label)
    teacher = f"teacher: {style.name(r.teacher)}"
    passk.plot(r.k, r.teacher_pass_at_k, color=style.MARKET, lw=2, ls="--", label=teacher)
    costs.plot(series.levels, series.costs[-1], color=style.MARKET, lw=2, ls="--", label=teacher)
    style.log_axis(passk, "x", lambda k: f"{k:g}")
    style.percent_axis(passk, "y")
    style.finish(passk, "pass@k of each model", "attempts k (log scale)", "pass@k (% solved)", legend=None)
    style.log_axis(costs, "y", lambda c: style.money_tick(c, r.cost_unit))
    style.percent_axis(costs, "x")
    style.finish(
        costs,
        "Cost of reaching solve rate u alone",
        style.SOLVE_RATE,
        style.cost_label(r.cost_unit, style.per_item(r.cost_unit)),
        legend=None,
    )
    fig.legend(*passk.get_legend_handles_labels(), loc="outside lower center", ncol=len(r.students) + 1, fontsize=9)

    sizes = np.asarray(spec.sizes)
    fit = r.fit
    margin.plot(sizes, r.max_margin, "o", color=style.ARBITRAGEUR, ms=7, label="ours")
    paper = paper_values(f"distill.{series.domain}.")
    if paper:
        margin.plot(sizes, [paper[s] for s in r.students], "x", color="black", ms=8, mew=2, label="paper")
    line = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 50)
    margin.plot(
        line,
        fit.predict(line),
        color=style.ARBITRAGEUR,
        lw=1.2,
        ls="--",
        label=f"fit {100 * fit.slope:.1f} pt per decade, $r^2$ = {fit.r_squared:.2f}",
    )
    style.log_axis(margin, "x", style.size_tick)
    style.percent_axis(margin, "y")
    margin.set_ylim(bottom=0)
    style.finish(
        margin,
        "Arbitrageur's margin against the teacher",
        f"{spec.size_label} (log scale)",
        style.MARGIN,
        legend="upper left",
    )
    return Section(
        f"distillation_{series.domain}",
        f"Distillation on {domain}",
        (
            f"Students distilled from {style.name(r.teacher)} on more and more data, each paired with the teacher in "
            "a two-stage cascade; the margin is averaged over the top solve rates and maximised over the caps.",
            f"The margin rises from {100 * r.max_margin[0]:.1f}% to {100 * r.max_margin[-1]:.1f}% with the "
            f"distillation data, about {100 * fit.slope:.1f} points per tenfold more (log-linear fit, "
            f"r² = {fit.r_squared:.2f}).",
        ),
        fig,
    )
