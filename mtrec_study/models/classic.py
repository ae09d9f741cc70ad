"""Classic references a reader would try first (biased MF lives in :mod:`.zoo` as ``mf``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtrec_study.features import id_positions, lookup_positions


class Popularity:
    """Score every item by its number of training interactions; the same list for everyone.

    The study's one popularity scorer: the ranking protocols, 06's reference rows and 09's
    baseline all use it, through the same two methods as :class:`BPR`.

    Used by mtrec_study.evaluation.ranking.
    """

    def fit(self, train: pd.DataFrame, items: np.ndarray | None = None) -> Popularity:
        """Count each item's training interactions; ``items`` fixes the catalogue's column order."""
        self.counts = train.groupby("item_id").size()
        self.items = None if items is None else np.asarray(items)
        self._row = None if items is None else self.score_items(self.items)
        return self

    def score_items(self, item_ids: np.ndarray) -> np.ndarray:
        """Scores for item ids (unseen items score 0)."""
        return self.counts.reindex(np.asarray(item_ids)).fillna(0).to_numpy("float64")

    def score_catalogue(self, user_ids: np.ndarray) -> np.ndarray:
        """``(len(user_ids), len(items))`` scores, columns in the ``items`` order given to :meth:`fit`."""
        if self._row is None:
            raise ValueError("Popularity.score_catalogue needs the catalogue: call fit(train, items)")
        return np.tile(self._row, (len(user_ids), 1))

    def score_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Scores of aligned ``(user, item)`` pairs (the user does not matter)."""
        return self.score_items(item_ids)


class BPR:
    """BPR-MF (Rendle et al., 2009): ``score(u, i) = p_u · q_i + b_i``, trained so that each
    observed item outscores a sampled unobserved one, loss ``-log σ(score(u, i) - score(u, j))``.

    Our own ranking baseline for the two published item protocols (leave-one-out with 99
    sampled negatives, and full-catalogue ranking on a random split). Each of ``epochs`` passes
    draws a fresh negative per positive; all passes are shuffled together into one Keras fit.
    L2 acts on the embedding tables.

    Args:
        factors: Embedding size.
        l2: L2 weight on the user, item and bias tables.
        learning_rate, epochs, batch_size: Adam settings and passes over the positives.
        seed: Seeds the negatives and the initial weights (same seed, same scores on the CPU).

    Used by mtrec_study.study.published.
    """

    def __init__(self, factors: int = 64, l2: float = 1e-5, learning_rate: float = 1e-3, epochs: int = 20,
                 batch_size: int = 1024, seed: int = 0):
        if factors < 1 or epochs < 1 or batch_size < 1 or l2 < 0 or learning_rate <= 0:
            raise ValueError(f"BPR needs factors, epochs, batch_size >= 1, l2 >= 0 and learning_rate > 0; got "
                             f"factors={factors}, epochs={epochs}, batch_size={batch_size}, l2={l2}, "
                             f"learning_rate={learning_rate}")
        self.factors, self.l2, self.learning_rate = factors, l2, learning_rate
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed

    def _network(self, n_users: int, n_items: int):
        import keras
        from keras import layers

        reg = keras.regularizers.L2(self.l2) if self.l2 else None
        user_emb = layers.Embedding(n_users, self.factors, embeddings_regularizer=reg, name="user_factors")
        item_emb = layers.Embedding(n_items, self.factors, embeddings_regularizer=reg, name="item_factors")
        item_bias = layers.Embedding(n_items, 1, embeddings_regularizer=reg, name="item_bias")
        u = keras.Input(shape=(), dtype="int32", name="user")
        i = keras.Input(shape=(), dtype="int32", name="pos")
        j = keras.Input(shape=(), dtype="int32", name="neg")
        pu = user_emb(u)

        def score(item):
            return layers.Add()([layers.Dot(axes=1)([pu, item_emb(item)]), layers.Flatten()(item_bias(item))])

        return keras.Model({"user": u, "pos": i, "neg": j}, layers.Subtract(name="margin")([score(i), score(j)]),
                           name="bpr")

    def fit(self, train: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> BPR:
        """Train on the observed ``(user_id, item_id)`` pairs of ``train``.

        Args:
            train: Observed interactions (every row is a positive).
            users, items: All user and item ids (the score matrix's rows and columns).

        Raises:
            ValueError: If ``train`` names an id outside ``users`` or ``items``.
        """
        import keras

        from mtrec_study.reproducibility import set_seed

        set_seed(self.seed)
        self.users, self.items = np.asarray(users, "int64"), np.asarray(items, "int64")
        self._upos, self._ipos = id_positions(self.users), id_positions(self.items)
        u = lookup_positions(self._upos, train["user_id"].to_numpy(), "BPR.fit: users")
        i = lookup_positions(self._ipos, train["item_id"].to_numpy(), "BPR.fit: items")
        rng = np.random.default_rng(self.seed)
        from mtrec_study.prepare import sample_negatives

        n = self.items.size
        keys = np.unique(u * n + i)
        uu = np.tile(u, self.epochs)
        jj = sample_negatives(uu, np.arange(n), keys, n, rng)
        order = rng.permutation(uu.size)
        self.net = self._network(self.users.size, n)
        self.net.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                         loss=keras.losses.BinaryCrossentropy(from_logits=True))
        self.net.optimizer.build(self.net.trainable_variables)  # here, so the first step is traced once
        x = {"user": uu[order].astype("int32"), "pos": np.tile(i, self.epochs)[order].astype("int32"),
             "neg": jj[order].astype("int32")}
        self.net.fit(x, np.ones(uu.size, "float32"), batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0)
        self._p = self.net.get_layer("user_factors").get_weights()[0]
        self._q = self.net.get_layer("item_factors").get_weights()[0]
        self._b = self.net.get_layer("item_bias").get_weights()[0][:, 0]
        return self

    def score_catalogue(self, user_ids: np.ndarray) -> np.ndarray:
        """``(len(user_ids), len(items))`` scores, columns in ``items`` order."""
        return self._p[lookup_positions(self._upos, user_ids, "BPR: users")] @ self._q.T + self._b

    def score_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Scores of aligned ``(user, item)`` pairs."""
        rows = lookup_positions(self._upos, user_ids, "BPR: users")
        cols = lookup_positions(self._ipos, item_ids, "BPR: items")
        return np.einsum("ij,ij->i", self._p[rows], self._q[cols]) + self._b[cols]


class EASE:
    r"""EASE (Steck, WWW 2019): a linear item-item model in closed form, the strongest classical
    ranking baseline on MovieLens in RecBole's tables.

    With the binary user-item matrix :math:`X` of the training pairs and :math:`G = X^\top X +
    \lambda I`, the weights are :math:`B = I - P\,\mathrm{diag}(1 / \mathrm{diag}(P))` with
    :math:`P = G^{-1}`, so :math:`B_{jj} = 0` (an item never recommends itself) and a user's
    scores are :math:`x_u B`. One matrix inverse of size ``n_items``; nothing is sampled, so the
    result does not depend on a seed.

    Args:
        l2: The ridge weight :math:`\lambda` (RecBole's ``reg_weight``; tuned on validation).

    Raises:
        ValueError: For ``l2 <= 0`` or a catalogue too large to invert in memory.

    Used by mtrec_study.study.published.
    """

    MAX_ITEMS = 40_000  # G, its inverse and B are n_items² float64 each: about 38 GB at 40k items

    def __init__(self, l2: float = 250.0):
        if not l2 > 0:
            raise ValueError(f"EASE needs l2 > 0 (items without training pairs make X'X singular), got {l2}")
        self.l2 = float(l2)

    def fit(self, train: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> EASE:
        """Fit on the training pairs; ``users`` and ``items`` fix the score matrix's rows and columns."""
        users, items = np.asarray(users), np.asarray(items)
        if items.size > self.MAX_ITEMS:
            raise ValueError(f"EASE inverts an n_items × n_items matrix; {items.size} items is above "
                             f"EASE.MAX_ITEMS={self.MAX_ITEMS}")
        self._upos, self._ipos = id_positions(users), id_positions(items)
        u = lookup_positions(self._upos, train["user_id"].to_numpy(), "EASE.fit: users")
        i = lookup_positions(self._ipos, train["item_id"].to_numpy(), "EASE.fit: items")
        X = np.zeros((users.size, items.size), dtype="float64")
        X[u, i] = 1.0
        G = X.T @ X
        G[np.diag_indices_from(G)] += self.l2
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices_from(B)] = 0.0
        self._X, self.B = X, B
        return self

    def score_catalogue(self, user_ids: np.ndarray) -> np.ndarray:
        """``(len(user_ids), n_items)`` scores :math:`x_u B`, columns in the ``items`` order of :meth:`fit`."""
        return self._X[lookup_positions(self._upos, user_ids, "EASE: users")] @ self.B

    def score_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Scores of aligned ``(user, item)`` pairs."""
        uniq, inv = np.unique(np.asarray(user_ids), return_inverse=True)
        cols = lookup_positions(self._ipos, item_ids, "EASE: items")
        return self.score_catalogue(uniq)[inv, cols]
