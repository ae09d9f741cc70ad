"""Synthetic data where the truth is known.

Two generators:

* :func:`make_mmoe_tasks` — the controlled-correlation regression pair of the MMoE paper
  (Ma et al., KDD 2018, §4.1), for reproducing its Figure 4 in ``06_ablations``.
* :func:`make_recsys_world` — a recommender world of any size whose users and items have latent
  factors and side features. It returns the same canonical tables as MovieLens plus the
  ground-truth preference, so tests and benchmarks can run on it instead of real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtrec_study.config import GENRES
from mtrec_study.datasets.movielens import RatingsData

# Constants the MMoE paper leaves open; chosen here and documented in 06_ablations.
MMOE_DIM = 100  # input dimension d
MMOE_SCALE = 1.0  # c, the norm of each task's weight vector
MMOE_SINES = 10  # m, the number of sine terms
MMOE_NOISE_STD = 0.1  # eps ~ N(0, 0.01)


@dataclass
class MMoETasks:
    """Inputs, the two targets, and the weight vectors whose cosine is ``p``.

    Used by mtrec_study.datasets.synthetic.
    """

    x: np.ndarray  # (n, d)
    y: np.ndarray  # (n, 2)
    w: np.ndarray  # (2, d)
    p: float


def make_mmoe_tasks(n: int, p: float, seed: int = 0, dim: int = MMOE_DIM, scale: float = MMOE_SCALE,
                    n_sines: int = MMOE_SINES, noise_std: float = MMOE_NOISE_STD) -> MMoETasks:
    r"""Two regression tasks whose label correlation is controlled by ``p``.

    Following Ma et al. (2018): draw orthogonal unit vectors :math:`u_1, u_2`, set
    :math:`w_1 = c u_1` and :math:`w_2 = c(p u_1 + \sqrt{1-p^2} u_2)`, so that
    :math:`\cos(w_1, w_2) = p`; then for :math:`x \sim N(0, I)`

    .. math:: y_k = w_k^\top x + \sum_{i=1}^{m} \sin(\alpha_i w_k^\top x + \beta_i) + \epsilon,

    with :math:`\alpha_i, \beta_i \sim N(0, 1)` shared by both tasks and
    :math:`\epsilon \sim N(0, \text{noise\_std}^2)`. The task structure (the ``w``, ``alpha``,
    ``beta``) depends on ``seed`` only, so train and test sets drawn with the same seed and
    different ``n`` share it when you pass ``x_seed``-style offsets through ``seed``.

    Args:
        n: Number of examples.
        p: Cosine of the two weight vectors, in [-1, 1].
        seed: Seed of the task structure and the samples.
        dim, scale, n_sines, noise_std: The paper's d, c, m and noise level.

    Raises:
        ValueError: If ``p`` is outside [-1, 1] or ``n`` < 1.

    Used by mtrec_study.study.ablations.
    """
    if not -1.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [-1, 1], got {p}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    u1, u2 = q[:, 0], q[:, 1]
    w = np.stack([scale * u1, scale * (p * u1 + np.sqrt(max(0.0, 1 - p * p)) * u2)])
    alpha, beta = rng.standard_normal(n_sines), rng.standard_normal(n_sines)
    x = rng.standard_normal((n, dim))
    lin = x @ w.T  # (n, 2)
    y = lin + np.sin(lin[:, :, None] * alpha + beta).sum(-1) + noise_std * rng.standard_normal((n, 2))
    return MMoETasks(x=x.astype("float32"), y=y.astype("float32"), w=w, p=float(p))


_OCCUPATIONS = ("administrator", "artist", "doctor", "educator", "engineer", "entertainment",
                "executive", "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none",
                "other", "programmer", "retired", "salesman", "scientist", "student", "technician",
                "writer")
_WORDS = {g: (f"{g.lower().replace(chr(39), '')}", f"{g.lower()[:4]}land", f"the {g.lower()} story")
          for g in GENRES}


@dataclass
class SyntheticWorld:
    """A generated world: canonical tables plus the ground truth that produced them.

    Used by mtrec_study.datasets.synthetic.
    """

    data: RatingsData
    user_factors: np.ndarray  # (n_users, k), row i is user id i+1
    item_factors: np.ndarray  # (n_items, k)
    item_bias: np.ndarray  # (n_items,)

    def true_affinity(self, user_ids: np.ndarray) -> np.ndarray:
        """Ground-truth preference scores, (len(user_ids), n_items)."""
        return self.user_factors[np.asarray(user_ids) - 1] @ self.item_factors.T + self.item_bias


def make_recsys_world(n_users: int = 500, n_items: int = 400, n_interactions: int = 20_000,
                      n_factors: int = 8, seed: int = 0, popularity_skew: float = 1.0,
                      side_signal: float = 0.7, block: int = 2048) -> SyntheticWorld:
    """Generate users, items and ratings in the MovieLens canonical tables.

    Users get age, gender and occupation; items get 1–3 genres, a year and a title whose words
    depend on the genres (so text encoders have signal). Latent factors are built partly from
    these side features (``side_signal`` of the variance), which makes cold start learnable from
    side features alone. Each user picks items without replacement with probability
    ``∝ exp(popularity + u·v)`` (the Gumbel top-k trick, in blocks of users), and rates them
    ``clip(round(3.5 + u·v + b_i + noise), 1, 5)``. One million interactions take a few seconds.

    Args:
        n_users, n_items, n_interactions: Sizes; interactions are spread log-normally over users.
        n_factors: Latent dimension.
        seed: Generator seed; the same seed gives identical tables.
        popularity_skew: Strength of the long tail of item popularity.
        side_signal: Share of latent variance explained by side features, in [0, 1].
        block: Users generated at a time (bounds memory).

    Introduced in notebooks/03_model_math.ipynb.
    """
    if n_interactions > n_users * n_items:
        raise ValueError(f"n_interactions={n_interactions} exceeds n_users*n_items={n_users * n_items}")
    if not 0.0 <= side_signal <= 1.0:
        raise ValueError(f"side_signal must lie in [0, 1], got {side_signal}")
    rng = np.random.default_rng(seed)
    users, u = _world_users(rng, n_users, n_factors, side_signal)
    genres, v, pop, item_bias = _world_items(rng, n_items, n_factors, side_signal, popularity_skew)
    counts = _interaction_counts(rng, n_users, n_items, n_interactions)
    users_col, items_col = [], []
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        logits = pop + u[start:stop] @ v.T  # (b, n_items)
        gumbel = -np.log(-np.log(rng.random(logits.shape)))
        order = np.argsort(-(logits + gumbel), axis=1)
        for r in range(stop - start):
            chosen = order[r, :counts[start + r]]
            users_col.append(np.full(chosen.size, start + r))
            items_col.append(chosen)
    uu, ii = np.concatenate(users_col), np.concatenate(items_col)
    ratings = _ratings(rng, np.einsum("nk,nk->n", u[uu], v[ii]) + item_bias[ii])
    ts = _timestamps(rng, uu.size)
    interactions = pd.DataFrame({"user_id": uu + 1, "item_id": ii + 1, "rating": ratings,
                                 "timestamp": ts})
    data = RatingsData(name="synthetic", interactions=interactions, users=_user_table(rng, *users),
                       items=_item_table(rng, genres),
                       source=f"make_recsys_world(seed={seed}, n_users={n_users}, n_items={n_items}, "
                              f"n_interactions={n_interactions})")
    return SyntheticWorld(data=data, user_factors=u, item_factors=v, item_bias=item_bias)


def _world_users(rng: np.random.Generator, n_users: int, k: int, side_signal: float):
    """Ages, genders and occupations, and latent factors partly built from them."""
    ages = rng.choice([18, 22, 27, 33, 40, 48, 55, 62], size=n_users)
    gender = rng.choice(["M", "F"], size=n_users, p=[0.7, 0.3])
    occ = rng.integers(0, len(_OCCUPATIONS), size=n_users)
    occ_vec, gen_vec, age_vec = (rng.standard_normal((len(_OCCUPATIONS), k)),
                                 rng.standard_normal((2, k)), rng.standard_normal((8, k)))
    age_idx = np.searchsorted([18, 22, 27, 33, 40, 48, 55, 62], ages)
    side_u = (occ_vec[occ] + gen_vec[(gender == "F").astype(int)] + age_vec[age_idx]) / np.sqrt(3)
    u = (np.sqrt(side_signal) * side_u + np.sqrt(1 - side_signal) * rng.standard_normal((n_users, k))) / np.sqrt(k) * 1.2
    return (ages, gender, occ), u


def _world_items(rng: np.random.Generator, n_items: int, k: int, side_signal: float, popularity_skew: float):
    """Genres (1–3 per item), latent factors partly built from them, popularity and item bias."""
    n_gen = rng.choice([1, 2, 3], size=n_items, p=[0.5, 0.35, 0.15])
    genre_pop = np.linspace(2.0, 0.2, len(GENRES) - 1)
    genre_pop /= genre_pop.sum()
    genres = np.zeros((n_items, len(GENRES)), dtype="int8")
    for i in range(n_items):
        genres[i, 1 + rng.choice(len(GENRES) - 1, size=n_gen[i], replace=False, p=genre_pop)] = 1
    genre_vec = rng.standard_normal((len(GENRES), k))
    side_v = genres @ genre_vec / np.sqrt(n_gen)[:, None]
    v = (np.sqrt(side_signal) * side_v + np.sqrt(1 - side_signal) * rng.standard_normal((n_items, k))) / np.sqrt(k) * 1.2
    pop = popularity_skew * rng.standard_normal(n_items)
    return genres, v, pop, 0.3 * pop


def _interaction_counts(rng: np.random.Generator, n_users: int, n_items: int, n_interactions: int) -> np.ndarray:
    """How many interactions each user has: log-normal, at least 5 (MovieLens' filter), at most n_items."""
    raw = rng.lognormal(0.0, 0.8, size=n_users)
    counts = np.clip(np.round(raw / raw.sum() * n_interactions), 5, n_items).astype(int)
    while counts.sum() != n_interactions:
        diff = n_interactions - counts.sum()
        idx = rng.integers(0, n_users, size=abs(diff))
        counts[idx] = np.clip(counts[idx] + np.sign(diff), 5, n_items)
        if counts.sum() == n_interactions or (diff < 0 and (counts <= 5).all()):
            break
    return counts


def _ratings(rng: np.random.Generator, affinity: np.ndarray) -> np.ndarray:
    """Ratings 1..5 from the true affinity u·v + b_i, with noise."""
    return np.clip(np.round(3.0 + 1.2 * affinity + 0.6 * rng.standard_normal(affinity.size)), 1, 5).astype("float64")


def _timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Times over 200 days from ml-100k's first timestamp, so time-ordered splits see realistic values."""
    return (874_724_710 + rng.integers(0, 200 * 86_400, size=n)).astype("int64")


def _user_table(rng: np.random.Generator, ages: np.ndarray, gender: np.ndarray, occ: np.ndarray) -> pd.DataFrame:
    """The canonical user table (ids 1..n) with a random zip code."""
    return pd.DataFrame({"age": ages.astype("int64"), "gender": gender, "occupation": np.asarray(_OCCUPATIONS)[occ],
                         "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, size=ages.size)]},
                        index=pd.Index(np.arange(1, ages.size + 1, dtype="int64"), name="user_id"))


def _item_table(rng: np.random.Generator, genres: np.ndarray) -> pd.DataFrame:
    """The canonical item table (ids 1..n): titles whose words depend on the genres, a year, genre columns."""
    n_items = genres.shape[0]
    titles = []
    for i in range(n_items):
        g = [GENRES[j] for j in np.flatnonzero(genres[i])]
        titles.append(" ".join(_WORDS[x][rng.integers(0, 3)] for x in g).title() + f" {i + 1}")
    items = pd.DataFrame({"title": titles, "year": pd.array(rng.integers(1930, 1999, size=n_items), dtype="Int64")},
                         index=pd.Index(np.arange(1, n_items + 1, dtype="int64"), name="item_id"))
    for j, g in enumerate(GENRES):
        items[g] = genres[:, j]
    items["duplicate_title"] = False
    return items
