"""mtrec-study: multi-task learning for recommender systems, as a reproducible study.

The package holds every piece of code that more than one notebook needs. Imports point
down only: ``report``/``evaluation`` use ``train``/``models``, which use ``features`` and
``prepare``, which use ``datasets``, which use ``config`` and ``reproducibility``.
"""

__version__ = "0.1.0"
