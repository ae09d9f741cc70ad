"""The one definition of the study's tasks: name, kind, label and mask rule, loss, primary metric.

The article trains one network on three tasks (§3.2 step 3): user-interest prediction, item
recommendation and user-behaviour prediction. Everything above this module reads the tasks from
:data:`REGISTRY`: the labels (:func:`label_rows`), the heads (``models.zoo``), the trainer's
losses, the shared-layer rule, the evaluation's primary metric per task and the tuner's score.
Adding a task means adding one :class:`Task` entry here, in the spirit of TFRS's ``Task``.

Every row of a task set is a (user, item) pair with a rating, or NaN for a sampled negative.
A task's *label rule* says what it learns from that row and its *mask rule* which rows count:

========== ========== ====================================== ============ ==============
task       kind       label                                  mask         primary metric
========== ========== ====================================== ============ ==============
interest   binary     like: rated and rating >= 4            rated rows   AUC
item       binary     interacted: the row was rated          every row    AUC
behaviour  regression the rating 1..5 (0 where unrated)      rated rows   RMSE
ctcvr      binary     interacted and liked (ESMM, auxiliary) every row    AUC
retrieval  retrieval  the row's item among the catalogue     observed     NDCG@10
                      (two-tower, auxiliary)                 rows
========== ========== ====================================== ============ ==============

On implicit data (interactions without ratings) every task whose label needs a rating
(``like``, ``rating``) gets an all-zero mask, so only the item task is learnt.

``ctcvr`` is auxiliary: ESMM trains it *instead of* ``interest`` (it ``replaces`` it), and it is
not one of the article's tasks, so it is not averaged into Δm% or shown as a headline.
``retrieval`` is the two-tower network's form of the item task: a softmax over the catalogue on
the observed rows (its output is ``log p(item | user)``), trained instead of ``item``, whose
sigmoid the network then reads off the same score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LIKE_THRESHOLD = 4.0
KINDS = ("binary", "regression", "retrieval")
LABEL_RULES = ("like", "interacted", "rating")
RATING_LABELS = ("like", "rating")  # label rules that cannot be computed without a rating
MASK_RULES = ("rated", "all", "observed")


@dataclass(frozen=True)
class Task:
    """One task of the multi-task network.

    Attributes:
        name: The task's key in labels, masks, model outputs and results (layers of its tower are
            named ``<name>_...``, which is how the trainer tells task layers from shared ones).
        kind: ``"binary"`` (sigmoid head, log loss), ``"regression"`` (rating head, MSE) or
            ``"retrieval"`` (output ``log p(item | user)`` over the catalogue, loss its negative).
        label: Rule of :data:`LABEL_RULES` that turns a row's rating into the label.
        mask: Rule of :data:`MASK_RULES`: which rows the loss and the metrics count.
        primary_metric: The one metric per task that Δm% averages and headline tables show.
        description: What the task predicts, in words.
        auxiliary: Trained by some models but not one of the article's tasks.
        replaces: For an auxiliary task, the article task a model trains it instead of.

    Used by mtrec_study.tasks.
    """

    name: str
    kind: str
    label: str
    mask: str
    primary_metric: str
    description: str
    auxiliary: bool = False
    replaces: str | None = None

    def __post_init__(self):
        for field, value, valid in (("kind", self.kind, KINDS), ("label", self.label, LABEL_RULES),
                                    ("mask", self.mask, MASK_RULES)):
            if value not in valid:
                raise ValueError(f"task {self.name!r}: {field} {value!r} is not one of {', '.join(valid)}")

    @property
    def regression(self) -> bool:
        """Whether the task is a regression (its head predicts a rating, its loss is MSE)."""
        return self.kind == "regression"

    @property
    def needs_rating(self) -> bool:
        """Whether the task's label is computed from a rating (so implicit data cannot train it)."""
        return self.label in RATING_LABELS


INTEREST = "interest"
ITEM_TASK = "item"
BEHAVIOUR = "behaviour"
CTCVR = "ctcvr"
RETRIEVAL = "retrieval"

REGISTRY: dict[str, Task] = {t.name: t for t in (
    Task(INTEREST, "binary", label="like", mask="rated", primary_metric="auc",
         description="will the user like the item (rating >= 4), on rated pairs"),
    Task(ITEM_TASK, "binary", label="interacted", mask="all", primary_metric="auc",
         description="will the user interact with the item, against sampled negatives"),
    Task(BEHAVIOUR, "regression", label="rating", mask="rated", primary_metric="rmse",
         description="the rating 1..5 the user gives, on rated pairs"),
    Task(CTCVR, "binary", label="like", mask="all", primary_metric="auc", auxiliary=True, replaces=INTEREST,
         description="interact and like, over the entire space (ESMM's product of item and interest)"),
    Task(RETRIEVAL, "retrieval", label="interacted", mask="observed", primary_metric="ndcg@10", auxiliary=True,
         replaces=ITEM_TASK, description="which item of the catalogue the user interacts with (softmax, two-tower)"),
)}

TASKS: tuple[str, ...] = tuple(n for n, t in REGISTRY.items() if not t.auxiliary)
TASK_TYPES: dict[str, str] = {n: REGISTRY[n].kind for n in TASKS}
PRIMARY_METRICS: tuple[tuple[str, str], ...] = tuple((n, REGISTRY[n].primary_metric) for n in TASKS)


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``.

    Raises:
        ValueError: For an unknown name (lists the valid ones).

    Used by mtrec_study.tasks, mtrec_study.models.retrieval, mtrec_study.models.zoo.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def task_kind(name: str) -> str:
    """``"binary"``, ``"regression"`` or ``"retrieval"`` for a task (auxiliary ones included).

    Used by mtrec_study.plots, mtrec_study.training.trainer.
    """
    return get_task(name).kind


def trained_tasks(outputs: list[str]) -> list[str]:
    """The outputs a model is trained on: an auxiliary task's output replaces the task it stands for.

    ESMM outputs ``interest`` (read out) and ``ctcvr`` (trained), so it trains ``ctcvr`` instead
    of ``interest``.

    Used by mtrec_study.models.zoo.
    """
    replaced = {REGISTRY[o].replaces for o in outputs if o in REGISTRY and REGISTRY[o].replaces}
    return [o for o in outputs if o not in replaced]


def label_rows(ratings: np.ndarray, observed: np.ndarray | None = None,
               has_ratings: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels and masks of every task for rows with ratings (NaN = sampled negative), float32.

    Args:
        ratings: One rating per row, NaN where there is none.
        observed: Which rows are observed interactions (default: those with a rating). Implicit
            data passes it, since its observed rows carry no rating.
        has_ratings: False for implicit data: every task whose label needs a rating
            (:attr:`Task.needs_rating`) gets an all-zero mask, so it adds nothing to the loss.

    Used by mtrec_study.prepare, mtrec_study.streaming.
    """
    rating = np.asarray(ratings, dtype="float64")
    observed = ~np.isnan(rating) if observed is None else np.asarray(observed, dtype=bool)
    rated = observed & ~np.isnan(rating)
    like = rated & (np.nan_to_num(rating) >= LIKE_THRESHOLD)
    values = {"like": like.astype("float32"), "interacted": observed.astype("float32"),
              "rating": np.where(rated, rating, 0.0).astype("float32")}
    masks = {"rated": rated.astype("float32"), "all": np.ones(len(rating), "float32"),
             "observed": observed.astype("float32")}
    unlabelled = np.zeros(len(rating), "float32")
    return ({n: values[t.label].copy() for n, t in REGISTRY.items()},
            {n: (masks[t.mask] if has_ratings or not t.needs_rating else unlabelled).copy()
             for n, t in REGISTRY.items()})
