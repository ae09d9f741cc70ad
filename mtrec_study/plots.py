"""Figures shared by notebooks: labelled axes, units, saved as PNG under ``OUTPUT_DIR/figures``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Save a figure as PNG (tight bounding box) and return its path.

    Introduced in notebooks/01_data_preprocessing.ipynb.
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
    binary = summary[summary["task"] != "behaviour"].pivot(index="part", columns="task", values="mean_label")
    binary = binary.loc[[p for p in ("train", "valid", "test") if p in binary.index]]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    binary.plot.bar(ax=ax, rot=0)
    ax.set_ylim(0, 1)
    ax.set_xlabel("split part")
    ax.set_ylabel("share of positive labels")
    ax.set_title("Label balance of the binary tasks")
    return fig
