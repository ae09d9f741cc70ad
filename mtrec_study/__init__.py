"""mtrec-study: multi-task learning for recommender systems, as a reproducible study.

The package holds every piece of code that more than one notebook needs, in layers; a module
imports only from its own layer or the layers below (``tests/unit/test_layout.py`` checks it):

1. core: ``config`` (paths), ``tasks`` (the one definition of the three tasks), ``results``
   (the tidy result format and atomic writes), ``params`` (presets), ``reproducibility``;
2. data: ``datasets`` (MovieLens layouts, synthetic worlds);
3. preparation: ``prepare`` (cleaning, splits, negatives, task sets), ``features``, ``text``,
   ``streaming`` (Parquet shards for data larger than memory);
4. models: ``models`` (the article's network, shared-bottom, MMoE, PLE, ESMM, MF, BPR, popularity);
5. training: ``training`` (trainer, losses, weighting, shared layers, diagnostics);
6. evaluation: ``evaluation`` (metrics, predictions, ranking, statistics);
7. study: ``study`` (experiments, ablations, claims, tuning, peers, the published comparison);
8. presentation: ``plots``, ``report``, ``cli``.
"""

__version__ = "0.1.0"

from mtrec_study.config import pin_numerics  # noqa: E402 (the module docstring and version come first)

pin_numerics()  # before any module below loads numpy or TensorFlow
