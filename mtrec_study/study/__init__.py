"""The study: experiments that train and evaluate, and the verdicts on the article's claims.

- :mod:`~mtrec_study.study.experiment`: holdout and k-fold cross-validation of named runs;
- :mod:`~mtrec_study.study.ablations`: the ablation grids of 06 and the synthetic MMoE study;
- :mod:`~mtrec_study.study.claims`: the article's claims, quoted, and the rules for each verdict;
- :mod:`~mtrec_study.study.tuning`: validation-only search with an equal budget per model;
- :mod:`~mtrec_study.study.peers`: the published rating peers (Surprise) on our folds;
- :mod:`~mtrec_study.study.published`: 09's comparison with published baselines;
- :mod:`~mtrec_study.study.misses`: what was tried where one of 09's targets is missed;
- :mod:`~mtrec_study.study.scaling`: 10's training cost against the data's size, from shards.
"""
