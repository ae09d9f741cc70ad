"""Run RecBole 1.2.1 with its defaults on an atomic ml-100k and export the split it made.

Runs inside ``.venv-recbole`` (``benchmarks/recbole/requirements.txt``), started by
``benchmarks/bench_recbole.py``; it imports nothing from mtrec_study. Usage::

    python benchmarks/recbole/run.py DATA_DIR OUT_DIR MODEL [MODEL ...]

``DATA_DIR/ml-100k/ml-100k.inter`` is the atomic file. For each model it writes
``OUT_DIR/<model>.json``: RecBole's test and best validation metrics, the epochs it trained and
the seconds; for Pop, ``OUT_DIR/Pop_counts.csv``, the count it holds for each item; once,
``OUT_DIR/split.csv``: every interaction with the part RecBole put it in
(``train``, ``valid``, ``test``), as the original user and item tokens.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(data_dir: str, out_dir: str, models: list[str]) -> None:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in models:
        config = Config(model=name, dataset="ml-100k", config_dict={
            "data_path": data_dir, "use_gpu": False, "show_progress": False, "state": "WARNING",
            "checkpoint_dir": str(out / "saved"), "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
            "topk": [10]})
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        if not (out / "split.csv").exists():  # the split depends on the seed and the data, not the model
            rows = ["user_id,item_id,part"]
            for part, loader in (("train", train), ("valid", valid), ("test", test)):
                inter = loader._dataset.inter_feat
                users = dataset.id2token("user_id", inter["user_id"].numpy())
                items = dataset.id2token("item_id", inter["item_id"].numpy())
                rows += [f"{u},{i},{part}" for u, i in zip(users, items, strict=True)]
            (out / "split.csv").write_text("\n".join(rows) + "\n")
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        start = time.perf_counter()
        best_valid, valid_result = trainer.fit(train, valid, saved=True, show_progress=False)
        test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
        if name == "Pop":  # the counts its ranking used, to score them with our metrics as well
            counts = trainer.model.item_cnt[:, 0].numpy()
            tokens = dataset.id2token("item_id", list(range(1, len(counts))))
            (out / "Pop_counts.csv").write_text("item_id,count\n" + "".join(
                f"{t},{int(c)}\n" for t, c in zip(tokens, counts[1:], strict=True)))
        (out / f"{name}.json").write_text(json.dumps({
            "model": name, "test": {k: float(v) for k, v in test_result.items()},
            "valid": {k: float(v) for k, v in valid_result.items()},
            "epochs_trained": len(trainer.train_loss_dict),
            "best_epoch": len(trainer.train_loss_dict) - int(trainer.cur_step),
            "seconds": time.perf_counter() - start, "epochs_max": int(config["epochs"]),
            "stopping_step": int(config["stopping_step"]), "valid_metric": config["valid_metric"],
            "seed": int(config["seed"])}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
