"""``python -m mtrec_study``: a thin command line over the functions the notebooks call."""

from __future__ import annotations

import argparse
import os
import sys


def _dataset_name(args: argparse.Namespace) -> str:
    """``--dataset``, else the data set the folder holds (``--data-dir`` or MTREC_DATA_DIR), else ml-100k."""
    from mtrec_study.datasets import dataset_in_folder

    if args.dataset:
        return args.dataset
    folder = args.data_dir or os.environ.get("MTREC_DATA_DIR")
    return (dataset_in_folder(folder) if folder else None) or "ml-100k"


def _cmd_data(args: argparse.Namespace) -> int:
    from mtrec_study.datasets import load_dataset

    data = load_dataset(_dataset_name(args), data_dir=args.data_dir)
    print(f"{data.name}: {len(data.interactions):,} interactions, {data.n_users:,} users, "
          f"{data.n_items:,} items from {data.source}")
    for note in data.notes:
        print(f"  note: {note}")
    if data.implicit:
        print("  implicit data: only the item task trains (interest and behaviour need ratings)")
    if args.text:
        from mtrec_study.text import fetch_minilm

        print(f"text model: {fetch_minilm(progress=True)}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mtrec_study.report.build import build_report

    index = build_report(args.preset, only=args.only, force=args.force, jobs=args.jobs, wait=not args.no_wait)
    print(f"report written: {index}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from mtrec_study.config import REPORTS_DIR, TRAIN_CACHE_ENV, TRAIN_CACHE_FOLDER
    from mtrec_study.study.published import tune_preset

    # The chosen settings' trainings are the ones 09 repeats: the report's build reuses them.
    os.environ.setdefault(TRAIN_CACHE_ENV, str((REPORTS_DIR / TRAIN_CACHE_FOLDER).resolve()))
    print(f"tuning written: {tune_preset(args.preset, args.out, only=args.only, fresh=args.fresh)}")
    return 0


_DATASET_HELP = ("ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, generic or synthetic (default: what the "
                 "--data-dir folder holds, else ml-100k)")
_DATA_DIR_HELP = ("a folder holding the files by hand: a GroupLens or RecBole MovieLens folder, or your own data "
                  "(interactions.csv or .parquet, optional users.* and items.*; see the README's 'Your own data')")


def _add_train_parser(sub) -> None:
    """Register ``python -m mtrec_study train``."""
    from mtrec_study.models import MODELS  # imports TensorFlow
    from mtrec_study.training.distribute import STRATEGIES
    from mtrec_study.training.optimizers import OPTIMIZERS
    from mtrec_study.training.weighting import WEIGHTINGS

    p = sub.add_parser("train", help="train one model on a prepared data set")
    p.add_argument("--model", required=True, help=f"one of {', '.join(MODELS)}")
    p.add_argument("--weighting", default="fixed", help=f"one of {', '.join(WEIGHTINGS)}")
    p.add_argument("--lambdas", type=float, nargs="*", default=None, help="fixed λ per task")
    p.add_argument("--task", default=None, help="the task of single_task (with two_tower: its single-task twin)")
    p.add_argument("--dataset", default=None, help=_DATASET_HELP)
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--split", default="per_user_recent", help="a split key of mtrec_study.prepare.SPLITS")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS,
                   help="adam, or lazy_adam: only the embedding rows a batch looked up move, so a pointwise "
                        "network's step costs the same however many users and items there are (the choice for "
                        "large worlds; with PCGrad or an embedding L2 penalty it takes Adam's step)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default="reports/dev/train")
    p.add_argument("--save", default=None, help="save the trained network to this .keras file")
    p.add_argument("--shards", default=None,
                   help="train on a shard folder (python -m mtrec_study shards) instead of --dataset: the examples "
                        "stay on disk and each batch's features are looked up by id")
    p.add_argument("--lookup", action="store_true",
                   help="with --dataset: keep each example as two table rows and look its features up per batch "
                        "(memory grows with users + items, not with rows × feature width); the default "
                        "materialises them, which is faster on small data (benchmarks/bench_lookup.py)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="with --shards or --lookup: validate and check early stopping after this many batches "
                        "instead of a whole pass over the training examples")
    p.add_argument("--strategy", default="default", choices=STRATEGIES,
                   help="tf.distribute strategy: mirrored (local devices) or multi_worker (one process per "
                        "worker, each with its TF_CONFIG; only worker 0 writes the outputs)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from mtrec_study.training.distribute import is_chief, make_strategy

    # First: a multi-worker strategy must set up TensorFlow's runtime before anything else uses it.
    distribution = make_strategy(args.strategy) if args.strategy != "default" else None
    from mtrec_study.datasets import load_dataset
    from mtrec_study.prepare import prepare_tasks
    from mtrec_study.training import train

    chief = is_chief(distribution)
    if args.steps_per_epoch is not None and not (args.shards or args.lookup):
        raise ValueError(f"--steps-per-epoch {args.steps_per_epoch}: only with --shards or --lookup; a data set "
                         f"with materialised features trains whole epochs")
    if args.lookup and args.shards:
        raise ValueError("--lookup is for --dataset; shards (--shards) always look their features up by id")
    if args.shards:
        from mtrec_study.streaming import load_shards

        prepared = load_shards(args.shards)
    else:
        prepared = prepare_tasks(load_dataset(_dataset_name(args), data_dir=args.data_dir, seed=args.seed),
                                 args.split, seed=args.seed, lookup=args.lookup)
    result = train(args.model, prepared, weighting=args.weighting, lambdas=args.lambdas, epochs=args.epochs,
                   batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                   tasks=[args.task] if args.task else None, output_dir=args.output_dir if chief else None,
                   verbose=2, distribution=distribution, optimizer=args.optimizer,
                   steps_per_epoch=args.steps_per_epoch)
    print(f"trained {args.model} with {args.weighting} in {result.seconds:.1f} s; best epoch {result.best_epoch}; "
          + (f"history in {args.output_dir}" if chief else "worker 0 writes the history"))
    if args.save and chief:
        result.net.save(args.save)
        print(f"saved {args.save}")
    return 0 if result.stopped is None else 1


def _cmd_shards(args: argparse.Namespace) -> int:
    from mtrec_study.streaming import write_shards, write_synthetic_shards

    if args.dataset or args.data_dir:  # a data set of the reader's own, prepared in memory, its examples to disk
        from mtrec_study.datasets import load_dataset
        from mtrec_study.prepare import prepare_tasks

        prepared = prepare_tasks(load_dataset(_dataset_name(args), data_dir=args.data_dir, seed=args.seed),
                                 args.split, seed=args.seed, lookup=True)
        folder = write_shards(prepared, args.out)
        print(f"shards written: {folder} ({prepared.data.name}, split {args.split}; train with "
              f"python -m mtrec_study train --shards {folder} --model mmoe)")
        return 0
    folder = write_synthetic_shards(args.out, n_users=args.users, n_items=args.items, n_interactions=args.interactions,
                                    seed=args.seed, valid_frac=args.valid_frac)
    print(f"shards written: {folder} (train with python -m mtrec_study train --shards {folder} --model mmoe)")
    return 0


def build_parser(with_train: bool = True) -> argparse.ArgumentParser:
    """The argument parser of ``python -m mtrec_study``.

    Args:
        with_train: Describe the ``train`` command's options, which imports TensorFlow (about 4 s).
            :func:`main` passes False unless ``train`` is on the command line, so that ``data``
            and ``report`` start quickly; ``train`` is still listed in ``--help``.

    Used by mtrec_study.cli.
    """
    parser = argparse.ArgumentParser(prog="python -m mtrec_study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="obtain a data set into the cache and describe it")
    p.add_argument("--dataset", default=None, help=_DATASET_HELP)
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--text", action="store_true", help="also fetch the all-MiniLM-L6-v2 text model")
    p.set_defaults(func=_cmd_data)
    p = sub.add_parser("report", help="run the notebooks with a preset and build reports/<preset>/")
    p.add_argument("--preset", default="fast", help="fast, full or a YAML file")
    p.add_argument("--only", nargs="*", default=None, help="notebook stems to run (default: all)")
    p.add_argument("--force", action="store_true", help="rerun notebooks even when unchanged")
    p.add_argument("--jobs", type=int, default=None,
                   help="notebooks run at once (default: MTREC_REPORT_JOBS, else 2 on 2+ CPUs)")
    p.add_argument("--no-wait", action="store_true",
                   help="stop at once when another build of this preset is running (default: wait for it)")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("tune", help="validation-only search of 09_headline_results into params/tuned.yaml")
    p.add_argument("--preset", default="full", help="the preset whose 09 parameters to tune for (default full)")
    p.add_argument("--out", default="params/tuned.yaml", help="where to write the choices")
    p.add_argument("--only", nargs="*", default=None,
                   help="tune only these models and merge them into the existing --out file")
    p.add_argument("--fresh", action="store_true",
                   help="train every setting again, even those --out already scored under the same key")
    p.set_defaults(func=_cmd_tune)
    p = sub.add_parser("shards", help="write training and validation examples as Parquet shards: a synthetic world "
                                      "larger than memory (block by block), or a data set with --dataset/--data-dir")
    p.add_argument("--out", required=True, help="the shard folder to write (replaced only when the run succeeds)")
    p.add_argument("--dataset", default=None, help=f"{_DATASET_HELP} (instead of a synthetic world)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--split", default="per_user_recent", help="with --dataset: the split whose train and valid parts to write")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--interactions", type=int, default=50_000_000)
    p.add_argument("--valid-frac", type=float, default=0.05, help="share of interactions held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_shards)
    if with_train:
        _add_train_parser(sub)
    else:
        sub.add_parser("train", help="train one model on a prepared data set")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the command; errors print one clear line.

    Returns:
        0 on success, 2 on an error, 128 + the signal's number when a build was interrupted
        (130 for Ctrl-C, 143 for SIGTERM).

    Used by mtrec_study.cli, mtrec_study.__main__.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(with_train="train" in argv).parse_args(argv)
    from mtrec_study.datasets import DataError
    from mtrec_study.params import ParamsError
    from mtrec_study.report.errors import ReportError, ReportInterrupted
    from mtrec_study.text import TextModelError

    try:
        return args.func(args)
    except ReportInterrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except (DataError, ParamsError, ReportError, TextModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
