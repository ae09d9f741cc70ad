"""Training under tf.distribute: two worker processes on localhost share each global batch and
end with the single-process run's losses (within a stated tolerance); bad TF_CONFIGs are named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtrec_study.training import distribute

# Two workers each take half of every global batch and their gradients are summed; the masked
# per-task means then weigh rows slightly differently from one batch, so the losses agree closely,
# not exactly: every epoch's validation loss within 1% of the single-process run's.
TOLERANCE = 0.01
RUN = ["--dataset", "synthetic", "--seed", "2", "--model", "shared_bottom", "--epochs", "2", "--batch-size", "2048"]


def test_two_workers_share_each_batch_and_match_one_process(tmp_path):
    workers = distribute.run_local_workers(2, RUN, tmp_path, timeout=300)
    outs = [w["log"] for w in workers]
    for i, w in enumerate(workers):
        assert w["returncode"] == 0, f"worker {i} failed or ran past the deadline:\n{w['log'][-3000:]}"
    assert "worker 0 writes the history" in outs[1]
    assert not (tmp_path / "worker1").exists()  # only worker 0 writes outputs
    two = json.loads((tmp_path / "worker0" / "history_shared_bottom_fixed.json").read_text())["history"]
    # Each worker read its own half of every global batch of 2048 rows (the last batch is smaller).
    assert all(1000 <= b <= 1024 for b in two["replica_batch"]), two["replica_batch"]

    from mtrec_study.datasets import load_dataset
    from mtrec_study.prepare import prepare_tasks
    from mtrec_study.training import train

    data = load_dataset("synthetic", seed=2, log=None)
    one = train("shared_bottom", prepare_tasks(data, "per_user_recent", seed=2), epochs=2, batch_size=2048, seed=2,
                progress=False).history
    assert "replica_batch" not in one  # one process logs what it always did
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=TOLERANCE)
    for task in ("interest", "item", "behaviour"):
        np.testing.assert_allclose(two[f"val_{task}_loss"], one[f"val_{task}_loss"], rtol=2 * TOLERANCE)


@pytest.mark.parametrize("text, message", [
    (None, "needs TF_CONFIG set in each process"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "list of 'host:port'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', r"index': 0\.\.1"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}', "task must be"),
    ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}',
     r"only 'worker' addresses .* got also \['chief'\]"),
])
def test_a_bad_tf_config_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        distribute.check_tf_config(text)


def test_a_good_tf_config_passes_and_unknown_strategies_are_refused():
    config = distribute.check_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert config["task"]["index"] == 1
    with pytest.raises(ValueError, match="unknown strategy 'horovod'; valid: default, mirrored, multi_worker"):
        distribute.make_strategy("horovod")
    assert distribute.is_chief(None) and not distribute.is_multi_worker(distribute.make_strategy("default"))


@pytest.mark.parametrize("weighting", ["gradnorm", "pcgrad"])
def test_per_replica_weightings_are_refused_across_replicas(small_world, weighting):
    from mtrec_study.prepare import prepare_tasks
    from mtrec_study.training import train

    class TwoReplicas:  # what train() asks of a strategy before it uses one
        num_replicas_in_sync = 2

    with pytest.raises(ValueError, match=f"weighting '{weighting}'.*2 replicas use one of fixed, uncertainty, dwa"):
        train("shared_bottom", prepare_tasks(small_world.data, "per_user_recent", seed=0), weighting=weighting,
              distribution=TwoReplicas(), progress=False)
