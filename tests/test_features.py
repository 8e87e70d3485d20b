"""The batch n-gram transformer follows the scikit-learn transformer contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from triage.features import BatchNgrams, Projection

TEXTS = ["Someone is trying my door", "", "🔪 outside now!!", "a", "Lost wallet on the 42 bus",
         "he's got a KNIFE", "café née"]


def test_batch_equals_one_at_a_time() -> None:
    t = BatchNgrams(word_bits=12, byte_bits=12).fit(TEXTS)
    batch = t.transform(TEXTS).toarray()
    single = np.vstack([t.transform([x]).toarray() for x in TEXTS])
    assert batch.shape == (len(TEXTS), 8192)
    np.testing.assert_array_equal(batch, single)


def test_case_and_digits_are_folded_and_punctuation_separates_words() -> None:
    t = BatchNgrams(byte_sizes=(), min_df=1).fit(["bus 42 now"])
    a = t.transform(["Bus 42, NOW!"])
    b = t.transform(["bus 17 now"])
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    assert a.nnz == 3 + 2  # three words, two word pairs
    assert np.isclose(np.linalg.norm(a.toarray()), 1.0)  # the word block is L2-normalised


def test_rare_ngrams_are_dropped_and_blocks_normalised_separately() -> None:
    t = BatchNgrams(byte_sizes=(3,), byte_bits=12, word_bits=12).fit(
        ["knife now", "knife here", "only once"])
    row = t.transform(["knife once"]).toarray()[0]
    words, chars = row[:4096], row[4096:]
    assert np.count_nonzero(words) == 1  # "knife" (df 2); "once" and "knife once" are rare
    assert np.isclose(np.linalg.norm(words), 1.0) and np.isclose(np.linalg.norm(chars), 1.0)


def test_buckets_are_named_after_training_ngrams() -> None:
    t = BatchNgrams(byte_sizes=(), min_df=1).fit(["he's got a knife", "a knife"])
    names = set(t.feature_names().values())
    assert {"he's", "knife", "a knife", "got a"} <= names


def test_empty_text_has_no_features() -> None:
    t = BatchNgrams().fit([])
    assert t.transform([""]).nnz == 0
    assert t.transform([]).shape == (0, t.n_features_out_)


@pytest.mark.parametrize("params", [
    {"byte_sizes": (2, 3, 4, 5)}, {"byte_sizes": ()}, {"words": False, "byte_sizes": (4,)},
    {"bigrams": False, "byte_sizes": (3,)}, {"min_df": 2},
])
def test_projection_equals_the_matrix_product(params: dict[str, Any]) -> None:
    fitted = BatchNgrams(word_bits=12, byte_bits=12, **{"min_df": 1, **params}).fit(
        [*TEXTS, "someone is at my door", "a knife"])
    weights = np.random.default_rng(7).normal(size=(fitted.n_features_out_, 5))
    matrix = fitted.transform(TEXTS).tocsr()
    scores, (doc, col, value) = Projection(fitted, weights)(TEXTS)
    np.testing.assert_allclose(scores, matrix @ weights, atol=1e-12)
    # the word entries are exactly the matrix's entries in the word block
    words = np.zeros(matrix.shape)
    np.add.at(words, (doc, col), value)
    expected = matrix.toarray()
    expected[:, 1 << fitted.word_bits:] = 0
    np.testing.assert_allclose(words, expected, atol=1e-12)
    empty, entries = Projection(fitted, weights)([])
    assert empty.shape == (0, 5) and all(len(e) == 0 for e in entries)
