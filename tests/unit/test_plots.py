"""Figures a reader must be able to read: every mark drawn where the data put it, nothing hidden."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mtrec_study import plots  # noqa: E402


def _result(estimate, low, high, seeds):
    return {"estimate": estimate, "ci_low": low, "ci_high": high, "seed_estimates": seeds}


@pytest.mark.parametrize("n_rows", [1, 6])
def test_seed_intervals_draws_every_seed_and_keeps_the_legend_off_the_bars(n_rows):
    comparisons = {f"comparison {i}": _result(0.1 * i - 0.2, 0.1 * i - 0.4, 0.1 * i + 0.05, [0.1 * i - 0.3, 0.1 * i - 0.1])
                   for i in range(n_rows)}
    fig = plots.seed_intervals(comparisons, "title", "difference")
    ax = fig.axes[0]
    # One line per row for the interval, the seed dots and the mean tick (the legend's empty handles excluded).
    drawn = [line for line in ax.get_lines() if len(line.get_xdata())]
    bars = [line for line in drawn if line.get_color() == "tab:blue"]  # not the dashed line at 0
    dots = [line for line in drawn if line.get_marker() == "o"]
    assert [tuple(b.get_xdata()) for b in bars] == [(r["ci_low"], r["ci_high"]) for r in comparisons.values()]
    assert [list(d.get_xdata()) for d in dots] == [r["seed_estimates"] for r in comparisons.values()]
    ticks = [line for line in drawn if line.get_marker() == "|"]
    assert [list(t.get_xdata()) for t in ticks] == [[r["estimate"]] for r in comparisons.values()]
    assert [label.get_text() for label in ax.get_yticklabels()] == list(comparisons)
    # The legend sits below the axes, so it never covers an interval (with one row there is no free corner).
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    axes = ax.get_tightbbox(renderer)  # the axes with its tick labels and x label
    assert legend.y1 <= axes.y0 + 1e-6, (legend, axes)
    assert legend.y0 >= fig.bbox.y0 - 1e-6, (legend, fig.bbox)  # and inside the figure, not cut off
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"95% interval, seeds pooled", "one training seed",
                                                                   "mean over seeds"}
    matplotlib.pyplot.close(fig)


def test_seed_intervals_with_one_seed_draws_its_estimate_and_refuses_nothing_to_draw():
    fig = plots.seed_intervals({"a": {"estimate": 0.3, "ci_low": 0.1, "ci_high": 0.5, "seed_estimates": None}}, "t")
    dots = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o" and len(line.get_xdata())]
    assert np.allclose(dots[0].get_xdata(), [0.3])
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="no comparisons"):
        plots.seed_intervals({}, "t")
