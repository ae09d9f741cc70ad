"""Controlled experiments: the MMoE paper's synthetic study (Ma et al., KDD 2018, section 3.3),
used in ``08_sharing_mechanisms``, and the λ simplex with its Pareto front, used in ``06_ablations``.

Two regression tasks whose label correlation is set by ``p`` (see
:func:`mtrec_study.datasets.synthetic.make_mmoe_tasks`) are learnt by a shared-bottom network, a
one-gate mixture of experts (OMoE) and MMoE with the paper's sizes: 8 experts of 16 units, task
towers of 8 units, and a 113-unit shared bottom (so the three have about the same number of
parameters). The paper finds that MMoE degrades least as ``p`` falls and that both MoE models
beat shared-bottom; :func:`mmoe_synthetic_study` measures whether we see the same.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtrec_study.config import show_progress
from mtrec_study.datasets.synthetic import MMOE_DIM, make_mmoe_tasks
from mtrec_study.models.layers import MixtureOfExperts, mlp
from mtrec_study.reproducibility import set_seed
from mtrec_study.results import as_tidy, tidy_rows
from mtrec_study.streaming import ArraySet

SYNTHETIC_MODELS = ("shared_bottom", "omoe", "mmoe")


def build_synthetic_model(kind: str, dim: int = MMOE_DIM, n_experts: int = 8, expert_units: int = 16,
                          tower_units: int = 8, bottom_units: int = 113) -> keras.Model:
    """A two-task regression network for dense inputs: ``shared_bottom``, ``omoe`` or ``mmoe``.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    if kind not in SYNTHETIC_MODELS:
        raise ValueError(f"unknown synthetic model {kind!r}; valid: {', '.join(SYNTHETIC_MODELS)}")
    x = keras.Input((dim,), name="x")
    if kind == "shared_bottom":
        shared = mlp([bottom_units], name="shared_bottom")(x)
        mixed = [shared, shared]
    else:
        n_gates = 1 if kind == "omoe" else 2
        out = MixtureOfExperts(n_experts, [expert_units], n_gates, name="shared_moe")(x)
        mixed = [out[0], out[0]] if n_gates == 1 else out[:2]
    outputs = {f"task{k + 1}": keras.layers.Dense(1, name=f"task{k + 1}_head")(
        mlp([tower_units], name=f"task{k + 1}_tower")(h)) for k, h in enumerate(mixed)}
    return keras.Model({"x": x}, outputs, name=kind)


def run_synthetic(kind: str, p: float, seed: int, n_train: int = 10_000, n_test: int = 2_000, epochs: int = 20,
                  batch_size: int = 256, learning_rate: float = 1e-3) -> dict[str, float]:
    """Train one model on one draw of the two tasks; return its test MSE per task and summed.

    Train and test rows come from one draw (same task structure), split by position.

    Used by mtrec_study.study.ablations.
    """
    data = make_mmoe_tasks(n_train + n_test, p, seed=seed)
    x, y = data.x, data.y
    set_seed(seed)
    net = build_synthetic_model(kind)
    net.compile(keras.optimizers.Adam(learning_rate), loss={"task1": "mse", "task2": "mse"})
    targets = {"task1": y[:n_train, 0], "task2": y[:n_train, 1]}
    # A new seeded order each epoch (Keras's own shuffle of arrays repeats one order under a fixed seed).
    net.fit(ArraySet({"x": x[:n_train]}, targets).dataset(batch_size, seed=seed), epochs=epochs, verbose=0,
            shuffle=False)
    pred = net.predict({"x": x[n_train:]}, batch_size=4096, verbose=0)
    mse = {k: float(np.mean((np.asarray(pred[k]).reshape(-1) - y[n_train:, i]) ** 2))
           for i, k in enumerate(("task1", "task2"))}
    return {**mse, "total": mse["task1"] + mse["task2"], "parameters": int(net.count_params())}


def mmoe_synthetic_study(ps=(0.5, 0.7, 0.9, 1.0), seeds=(0, 1, 2, 3, 4), models=SYNTHETIC_MODELS,
                         progress: bool = True, **kwargs) -> pd.DataFrame:
    """Every model × correlation × seed; tidy rows (``protocol = "p=<p>"``, ``fold = seed``).

    Metrics: ``test_mse_task1``, ``test_mse_task2`` and ``test_mse_total``. Seeds index repeated
    draws of the data *and* the initialisation, so rows with the same seed are paired across models.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    rows = []
    grid = [(m, p, s) for p in ps for s in seeds for m in models]
    for model, p, seed in tqdm(grid, desc="MMoE synthetic study", unit="run", disable=not show_progress(progress)):
        out = run_synthetic(model, p, seed, **kwargs)
        rows += tidy_rows({"test_mse_task1": out["task1"], "test_mse_task2": out["task2"],
                           "test_mse_total": out["total"]}, model, "synthetic", f"p={p:g}", seed)
    return as_tidy(rows)


def degradation(tidy: pd.DataFrame, metric: str = "test_mse_total") -> pd.DataFrame:
    """Per model: mean loss at the highest and lowest ``p`` and how much it grows between them.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    sel = tidy[tidy["metric"] == metric].assign(p=lambda d: d["protocol"].str.removeprefix("p=").astype(float))
    means = sel.groupby(["model", "p"])["value"].mean().unstack("p")
    hi, lo = means.columns.max(), means.columns.min()
    return pd.DataFrame({f"loss at p={hi:g}": means[hi], f"loss at p={lo:g}": means[lo],
                         "growth": means[lo] - means[hi], "growth_pct": 100 * (means[lo] / means[hi] - 1)})


# --------------------------------------------------------------------------- the λ simplex (06_ablations)
def simplex_grid(steps: int, n_tasks: int = 3) -> list[tuple[float, ...]]:
    """Every λ on the simplex with coordinates in multiples of ``1/steps``, plus equal weights.

    ``steps=1`` gives the vertices (one task only), ``steps=2`` adds the edge midpoints, and so
    on. Equal weights :math:`(1/T, ..., 1/T)` are always included. Since Adam is invariant to a
    constant factor on the loss, :math:`(1/3, 1/3, 1/3)` trains like the article's (1, 1, 1).

    Raises:
        ValueError: If ``steps`` or ``n_tasks`` is below 1.

    Introduced in notebooks/06_ablations.ipynb.
    """
    if steps < 1 or n_tasks < 1:
        raise ValueError(f"simplex_grid needs steps >= 1 and n_tasks >= 1, got steps={steps}, n_tasks={n_tasks}")

    def compositions(total: int, parts: int):
        if parts == 1:
            yield (total,)
            return
        for first in range(total, -1, -1):
            for rest in compositions(total - first, parts - 1):
                yield (first, *rest)

    points = [tuple(c / steps for c in comp) for comp in compositions(steps, n_tasks)]
    equal = tuple(1.0 / n_tasks for _ in range(n_tasks))
    if not any(np.allclose(p, equal) for p in points):
        points.append(equal)
    return points


def lambda_name(lambdas) -> str:
    """A run name for a λ vector, such as ``λ=(0.50,0.50,0.00)``.

    Introduced in notebooks/06_ablations.ipynb.
    """
    return "λ=(" + ",".join(f"{x:.2f}" for x in lambdas) + ")"


def pareto_front(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.Series:
    """Which rows no other row dominates (at least as good on every objective, better on one).

    Args:
        frame: One row per configuration, one column per objective.
        objectives: ``{column: "max" | "min"}``.

    Returns:
        A boolean Series aligned with ``frame``; rows with a NaN objective are never on the front.

    Raises:
        ValueError: For a direction other than ``max`` / ``min`` or a missing column.

    Introduced in notebooks/06_ablations.ipynb.
    """
    for col, d in objectives.items():
        if d not in ("max", "min"):
            raise ValueError(f"objective {col!r} has direction {d!r}; valid: 'max', 'min'")
        if col not in frame:
            raise ValueError(f"objective {col!r} is not a column; columns: {list(frame.columns)}")
    vals = np.column_stack([frame[c].to_numpy("float64") * (1 if d == "max" else -1) for c, d in objectives.items()])
    ok = ~np.isnan(vals).any(axis=1)
    front = np.zeros(len(frame), bool)
    for i in np.flatnonzero(ok):
        others = vals[ok]
        dominated = ((others >= vals[i]).all(axis=1) & (others > vals[i]).any(axis=1)).any()
        front[i] = not dominated
    return pd.Series(front, index=frame.index, name="pareto")
