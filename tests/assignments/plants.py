"""Planted submissions: plausible wrong answers (and one right answer written differently).

Each plant is the master's solution with a few exact text edits, graded through the real path
(``manage.grade``, i.e. ``otter run``). ``expect`` gives, for the questions the edit touches, the
status the grader must report: ``partial`` means the public tests pass (a student sees green checks)
and only the hidden tests catch the mistake; ``failed`` means no points. Every other autograded
question must keep full marks, so a plant cannot pass by breaking the whole notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plant:
    submission: str  # file name without .ipynb; it contains the assignment's name
    assignment: str
    why: str
    edits: tuple[tuple[str, str], ...]  # (old, new); each old text occurs exactly once in the solution's code
    expect: dict[str, str] = field(default_factory=dict)  # question -> "partial" | "failed" | "passed"
    reason: dict[str, str] = field(default_factory=dict)  # question -> text its row's reason must contain


A1, A2, A3, A4 = "a1_mtl_loss", "a2_ranking_metrics", "a3_mmoe_gate", "a4_ablation"

PLANTS = (
    # --- a1: the masked, weighted loss
    Plant("allrows_a1_mtl_loss", A1, "a mean over all rows instead of over the labelled rows",
          (("return float(np.sum(per_row * mask) / max(1.0, float(np.sum(mask))))",
            "return float(np.mean(per_row * mask))"),),
          {"q1_task_loss": "partial", "q2_total_loss": "partial"}),
    # Also bad input: the first answer cell (right) ends with a line that raises; the cells after it still run.
    Plant("normalised_a1_mtl_loss", A1, "a weighted mean (divided by the sum of the weights) instead of the weighted sum",
          (("for t in lambdas))", "for t in lambdas) / sum(lambdas.values()))"),
           ("    return float(np.sum(per_row * mask) / max(1.0, float(np.sum(mask))))\n    # END SOLUTION",
            "    return float(np.sum(per_row * mask) / max(1.0, float(np.sum(mask))))\n    # END SOLUTION\n\n\n"
            'task_loss("binary", [1, 0], [0.5, 0.5])  # forgot the mask: TypeError')),
          {"q2_total_loss": "partial"}),
    # --- a2: ranking metrics with ties
    Plant("optimistic_a2_ranking_metrics", A2, "an optimistic tie rule (relevant candidates first among ties)",
          (("relevant_row.astype(int), -scores_row", "-relevant_row.astype(int), -scores_row"),),
          {"q1_ranks": "failed", "q2_hr_ndcg": "partial"}),
    Plant("allusers_a2_ranking_metrics", A2, "users without a relevant item counted as zeros in the mean",
          (("        if r.any():\n            vals.append(float(r[pessimistic_order(s, r)[:k]].any()))",
            "        vals.append(float(r[pessimistic_order(s, r)[:k]].any()))"),
           ("        if not r.any():\n            continue\n",
            "        if not r.any():\n            vals.append(0.0)\n            continue\n")),
          {"q2_hr_ndcg": "partial"}),
    # --- a3: the MMoE gate
    Plant("nosoftmax_a3_mmoe_gate", A3, "a gate without softmax (raw logits as mixture weights)",
          (("gate = ops.softmax(ops.matmul(x, self.kernel) + self.bias, axis=-1)",
            "gate = ops.matmul(x, self.kernel) + self.bias"),),
          {"q1_gate": "partial"}),
    Plant("sigmoid_a3_mmoe_gate", A3, "sigmoid weights rescaled to sum to one: passes the public check, is no softmax",
          (("gate = ops.softmax(ops.matmul(x, self.kernel) + self.bias, axis=-1)",
            "gate = ops.sigmoid(ops.matmul(x, self.kernel) + self.bias)\n"
            "        gate = gate / ops.sum(gate, axis=-1, keepdims=True)"),),
          {"q1_gate": "partial"}),
    Plant("biasfirst_a3_mmoe_gate", A3, "RIGHT answer: the bias created before the kernel (tests find weights by name)",
          (('        self.kernel = self.add_weight(shape=(x_shape[-1], self.n_experts), initializer="glorot_uniform", '
            'name="kernel")\n        self.bias = self.add_weight(shape=(self.n_experts,), initializer="zeros", name="bias")\n',
            '        self.bias = self.add_weight(shape=(self.n_experts,), initializer="zeros", name="bias")\n'
            '        self.kernel = self.add_weight(shape=(x_shape[-1], self.n_experts), initializer="glorot_uniform", '
            'name="kernel")\n'),),
          {}),
    # --- a4: the ablation through papermill
    Plant("nolambda_a4_ablation", A4, "LAMBDA_BEHAVIOUR not passed to papermill: both runs train with lambda 1",
          (('parameters={"LAMBDA_BEHAVIOUR": float(lambda_behaviour), "SEED": SEED,', 'parameters={"SEED": SEED,'),),
          {"q1_run_ablation": "partial"}),
    # --- bad input: a renamed function, a function that raises
    Plant("renamed_a1_mtl_loss", A1, "task_loss renamed to masked_loss (total_loss still calls task_loss)",
          (("def task_loss(task_type, y, pred, mask):", "def masked_loss(task_type, y, pred, mask):"),),
          {"q1_task_loss": "failed", "q2_total_loss": "partial"},  # q2's negative-weight test never calls task_loss
          {"q1_task_loss": "NameError: name 'task_loss' is not defined",
           "q2_total_loss": "NameError: name 'task_loss' is not defined"}),
    Plant("typo_a2_ranking_metrics", A2, "a typo that makes the answer cell's function raise",
          (("np.lexsort(", "np.lexsrot("),),
          {"q1_ranks": "failed", "q2_hr_ndcg": "failed"},
          {"q1_ranks": "AttributeError: module 'numpy' has no attribute 'lexsrot'",
           "q2_hr_ndcg": "AttributeError: module 'numpy' has no attribute 'lexsrot'"}),
)
