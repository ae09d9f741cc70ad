"""Errors raised while obtaining or parsing data. Each names the file, key or value at fault."""

from __future__ import annotations


class DataError(RuntimeError):
    """Base class of every data error raised by :mod:`mtrec_study.datasets`.

    Introduced in notebooks/10_scaling.ipynb.
    """


class DataFormatError(DataError):
    """A file that exists but does not parse: the message names the file and the line.

    Used by mtrec_study.datasets.generic, mtrec_study.datasets.movielens, mtrec_study.models.retrieval, mtrec_study.streaming.
    """


class DataIntegrityError(DataError):
    """A download whose hash does not match: the message names both hashes.

    Used by mtrec_study.datasets, mtrec_study.datasets.sources.
    """


class DataFolderError(DataError):
    """A folder named explicitly (``data_dir=`` or ``MTREC_DATA_DIR``) that cannot be used.

    The message names the folder, the setting that named it and the layouts it accepts. The
    loader never falls back to another source in this case: the user asked for their own files.

    Used by mtrec_study.datasets.
    """


class DataUnavailableError(DataError):
    """Every source failed: the message lists what was tried and how to supply the files.

    Used by mtrec_study.datasets, mtrec_study.datasets.sources.
    """
