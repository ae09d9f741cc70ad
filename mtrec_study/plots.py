"""Figures shared by notebooks: labelled axes, units, saved as PNG under ``OUTPUT_DIR/figures``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mtrec_study.tasks import task_kind


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Save a figure as PNG (tight bounding box) and return its path.

    Introduced in notebooks/00_overview.ipynb.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def rating_histogram(ratings: pd.Series) -> plt.Figure:
    """Bar chart of rating counts.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    counts = ratings.value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="#4c72b0")
    ax.set_xlabel("rating (stars)")
    ax.set_ylabel("number of ratings")
    ax.set_title("Rating distribution")
    return fig


def long_tail(interactions: pd.DataFrame) -> plt.Figure:
    """Activity per user and popularity per item, sorted, on log axes.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, col, label in zip(axes, ("user_id", "item_id"), ("users", "items"), strict=True):
        counts = np.sort(interactions.groupby(col).size().to_numpy())[::-1]
        ax.loglog(np.arange(1, counts.size + 1), counts, color="#dd8452")
        ax.set_xlabel(f"{label} ranked by activity (rank)")
        ax.set_ylabel("interactions (count)")
        ax.set_title(f"Long tail of {label}")
    fig.tight_layout()
    return fig


def label_balance(summary: pd.DataFrame) -> plt.Figure:
    """Positive rate of the binary tasks per split part (from ``prepare.task_summary``).

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    binary = summary[summary["task"].map(task_kind) == "binary"].pivot(index="part", columns="task", values="mean_label")
    binary = binary.loc[[p for p in ("train", "valid", "test") if p in binary.index]]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    binary.plot.bar(ax=ax, rot=0)
    ax.set_ylim(0, 1)
    ax.set_xlabel("split part")
    ax.set_ylabel("share of positive labels")
    ax.set_title("Label balance of the binary tasks")
    return fig


def learning_curves(histories: dict[str, dict], tasks: list[str]) -> plt.Figure:
    """Train (solid) vs validation (dashed) loss per task, one panel per task, one colour per model.

    Introduced in notebooks/04_training.ipynb.
    """
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[0], tasks, strict=True):
        for c, (name, h) in enumerate(histories.items()):
            if f"{task}_loss" not in h:
                continue
            epochs = np.arange(1, len(h[f"{task}_loss"]) + 1)
            color = colors[c % len(colors)]
            ax.plot(epochs, h[f"{task}_loss"], color=color, label=f"{name} train")
            ax.plot(epochs, h[f"val_{task}_loss"], color=color, ls="--", label=f"{name} valid")
        ax.set_xlabel("epoch")
        ax.set_ylabel("masked loss (" + {"regression": "MSE", "retrieval": "softmax CE"}.get(task_kind(task), "BCE") + ")")
        ax.set_title(task)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def weight_curves(history: dict, tasks: list[str], title: str) -> plt.Figure:
    """Each task's effective loss weight per epoch.

    Introduced in notebooks/04_training.ipynb.
    """
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for task in tasks:
        w = history[f"weight_{task}"]
        ax.plot(np.arange(1, len(w) + 1), w, marker="o", label=task)
    ax.set_xlabel("epoch")
    ax.set_ylabel("effective task weight (epoch mean)")
    ax.set_title(title)
    ax.legend()
    return fig


def gate_usage(gates: dict[str, np.ndarray], tasks: list[str]) -> plt.Figure:
    """Mean gate weight per expert, one group of bars per gate.

    Introduced in notebooks/04_training.ipynb.
    """
    names = list(gates)
    n_exp = max(len(g) for g in gates.values())
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        label = tasks[int(name.rsplit("_", 1)[-1])] if name.rsplit("_", 1)[-1].isdigit() and len(names) == len(tasks) else name
        ax.bar(np.arange(len(gates[name])) + k * width, gates[name], width, label=f"gate of {label}")
    ax.set_xticks(np.arange(n_exp) + 0.4 - width / 2, [f"expert {i}" for i in range(n_exp)])
    ax.set_ylabel("mean gate weight (share)")
    ax.set_xlabel("expert")
    ax.set_title("How often each task's gate uses each expert")
    ax.legend(fontsize=8)
    return fig


def reliability(curves: dict[str, pd.DataFrame], title: str = "Calibration") -> plt.Figure:
    """Reliability diagram: observed positive rate against mean predicted probability per bin.

    Args:
        curves: ``{model: frame}`` from :func:`mtrec_study.evaluation.metrics.reliability_curve`.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfectly calibrated")
    for name, c in curves.items():
        used = c[c["count"] > 0]
        ax.plot(used["mean_pred"], used["frac_pos"], marker="o", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed positive rate (bin)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def ci_panels(summary: pd.DataFrame, keys, title: str) -> plt.Figure:
    """One panel per (task, metric): each model's mean with its CI, from
    :func:`mtrec_study.evaluation.summarise`.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    keys = list(keys)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.2), squeeze=False)
    for ax, (task, metric) in zip(axes[0], keys, strict=True):
        s = summary[(summary["task"] == task) & (summary["metric"] == metric)].reset_index(drop=True)
        err = np.vstack([s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]])
        ax.errorbar(s["mean"], np.arange(len(s)), xerr=np.nan_to_num(err), fmt="o", capsize=4)
        ax.set_yticks(np.arange(len(s)), s["model"])
        ax.set_xlabel(f"{task} {metric} (mean, 95% CI)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_vs_p(summary: pd.DataFrame, metric: str = "test_mse_total") -> plt.Figure:
    """The MMoE paper's figure: final test loss against task correlation ``p``, mean with 95% CI.

    Args:
        summary: :func:`mtrec_study.evaluation.summarise` rows with ``protocol = "p=<p>"``.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    s = summary[summary["metric"] == metric].assign(p=lambda d: d["protocol"].str.removeprefix("p=").astype(float))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for model, g in s.sort_values("p").groupby("model", sort=False):
        err = np.nan_to_num(np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]))
        ax.errorbar(g["p"], g["mean"], yerr=err, marker="o", capsize=3, label=model)
    ax.set_xlabel("task correlation p (cosine of the task weight vectors)")
    ax.set_ylabel("final test MSE, both tasks summed")
    ax.set_title("Synthetic study of Ma et al. (2018), mean and 95% CI over seeds")
    ax.legend()
    fig.tight_layout()
    return fig


def series(frame: pd.DataFrame, x: str, columns: list[str], xlabel: str, ylabel: str, title: str) -> plt.Figure:
    """Several columns of a frame against one column, one line each.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for c in columns:
        ax.plot(frame[x], frame[c], marker="o", label=c)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto(points: pd.DataFrame, x: str, y: str, colour: str, front: pd.Series, kind: pd.Series,
           title: str) -> plt.Figure:
    """Configurations in two objectives, a third as colour; the Pareto front circled.

    Args:
        points: One row per configuration (index = its name).
        x, y, colour: Columns to plot.
        front: Boolean, on the front (from :func:`mtrec_study.study.ablations.pareto_front`).
        kind: Marker group per row (``λ grid``, ``equal weights``, ``learned``).

    Introduced in notebooks/06_ablations.ipynb.
    """
    markers = {"λ grid": "o", "equal weights": "*", "learned": "s"}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    norm = plt.Normalize(points[colour].min(), points[colour].max())
    for k, g in points.groupby(kind, sort=False):
        sc = ax.scatter(g[x], g[y], c=g[colour], cmap="viridis", norm=norm, marker=markers.get(k, "o"),
                        s=140 if k != "λ grid" else 60, edgecolors="black", label=k)
    on = points[front.to_numpy()]
    ax.scatter(on[x], on[y], s=320, facecolors="none", edgecolors="crimson", linewidths=1.5, label="Pareto front")
    for name, r in points.iterrows():
        ax.annotate(str(name), (r[x], r[y]), fontsize=6.5, xytext=(4, 3), textcoords="offset points")
    fig.colorbar(sc, ax=ax, label=colour)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def scaling(points: pd.DataFrame) -> plt.Figure:
    """Epoch seconds and peak memory against training rows (log-log), one line per network.

    ``points`` has ``network``, ``training rows``, ``epoch s``, ``peak GB`` and ``source``;
    rows whose source is not ``"this run"`` (the streaming benchmark's) are hollow markers. With
    a ``materialised GB`` column, the memory panel also shows what the training rows' features
    would take if each row carried them (grey, dashed).

    Introduced in notebooks/10_scaling.ipynb.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    here = points[points["source"] == "this run"]
    other = points[points["source"] != "this run"]
    for ax, y, label in zip(axes, ("epoch s", "peak GB"), ("seconds per epoch", "peak memory (GB)"), strict=True):
        for name, part in here.groupby("network", sort=False):
            line, = ax.plot(part["training rows"], part[y], marker="o", label=name)
            bench = other[other["network"] == name]
            if len(bench):
                ax.plot(bench["training rows"], bench[y], marker="o", linestyle=":", mfc="none",
                        color=line.get_color(), label=f"{name}, streaming benchmark")
        if y == "peak GB" and "materialised GB" in points and points["materialised GB"].notna().any():
            full = points.dropna(subset=["materialised GB"]).groupby("training rows")["materialised GB"].max()
            ax.plot(full.index, full.to_numpy(), color="grey", linestyle="--", label="features materialised per row")
            ax.legend(fontsize=7)
        # Both axes logarithmic (the materialised line spans orders of magnitude), labelled at
        # powers of ten only, in plain numbers on y.
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("training rows (observed + sampled negatives)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("Seconds per epoch")
    axes[1].set_title("Peak memory of each training process")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def seed_intervals(comparisons: dict[str, dict], title: str, xlabel: str = "difference (higher is better for the first model)"
                   ) -> plt.Figure:
    """Each comparison's pooled interval (bar), its estimate (tick) and every training seed's estimate (dots).

    Args:
        comparisons: ``{label: result}`` with ``estimate``, ``ci_low``, ``ci_high`` and
            ``seed_estimates`` (from :func:`mtrec_study.evaluation.user_bootstrap`).
        title, xlabel: Labels of the figure.

    Raises:
        ValueError: If there is nothing to draw.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if not comparisons:
        raise ValueError("seed_intervals: no comparisons to draw")
    labels = list(comparisons)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.9), layout="constrained")
    for y, label in enumerate(labels):
        r = comparisons[label]
        ax.plot([r["ci_low"], r["ci_high"]], [y, y], color="tab:blue", lw=3, alpha=0.45, solid_capstyle="butt")
        seeds = r.get("seed_estimates") or [r["estimate"]]
        ax.plot(seeds, [y] * len(seeds), "o", color="tab:orange", ms=4, alpha=0.8)
        ax.plot(r["estimate"], y, "|", color="black", ms=14, mew=2)
    ax.axvline(0.0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.plot([], [], color="tab:blue", lw=3, alpha=0.45, label="95% interval, seeds pooled")
    ax.plot([], [], "o", color="tab:orange", ms=4, label="one training seed")
    ax.plot([], [], "|", color="black", ms=10, mew=2, label="mean over seeds")
    # Below the axes, so that it never hides a bar (one comparison leaves no free corner).
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig
