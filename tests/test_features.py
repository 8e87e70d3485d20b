"""The batch byte n-gram transformer follows the scikit-learn transformer contract."""

from __future__ import annotations

import numpy as np

from triage.features import ByteNgrams

TEXTS = ["Someone is trying my door", "", "🔪 outside now!!", "a", "Lost wallet on the 42 bus"]


def test_batch_equals_one_at_a_time() -> None:
    t = ByteNgrams(sizes=(3, 4), bits=12).fit(TEXTS)
    batch = t.transform(TEXTS).toarray()
    single = np.vstack([t.transform([x]).toarray() for x in TEXTS])
    assert batch.shape == (5, 4096)
    np.testing.assert_array_equal(batch, single)


def test_counts_are_case_and_digit_folded() -> None:
    t = ByteNgrams(sizes=(3,), bits=16).fit([])
    a, b = t.transform(["Bus 42"]).toarray(), t.transform(["bus 17"]).toarray()
    np.testing.assert_array_equal(a, b)
    # " bus 00 " padded: 6 trigrams
    assert a.sum() == len(" bus 00 ") - 2


def test_empty_text_has_no_features() -> None:
    t = ByteNgrams().fit([])
    assert t.transform([""]).nnz == 0
