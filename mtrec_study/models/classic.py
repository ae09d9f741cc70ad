"""Classic references a reader would try first (biased MF lives in :mod:`.zoo` as ``mf``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class Popularity:
    """Score every item by its number of training interactions; the same list for everyone.

    Introduced in notebooks/05_evaluation.ipynb.
    """

    def fit(self, train: pd.DataFrame) -> Popularity:
        self.counts = train.groupby("item_id").size()
        return self

    def score_items(self, item_ids: np.ndarray) -> np.ndarray:
        """Scores for item ids (unseen items score 0)."""
        return self.counts.reindex(np.asarray(item_ids)).fillna(0).to_numpy("float64")
