"""Hashed byte n-grams for a whole batch at once.

A scikit-learn transformer doing the job of ``HashingVectorizer(analyzer="char")``, but over
the concatenated bytes of a batch with numpy instead of document by document in Python.
scikit-learn's character analyzers cost 3-5x a word analyzer in prediction; this one costs
less than the word analyzer (``benchmarks/bench_classify.py`` prints both). Byte n-grams of
lower-cased UTF-8 text see through typos, text-speak and emoji (an emoji is a 4-byte run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

_SEP = 1  # byte that separates documents in the batch
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(0x100000001B3)
# bytes.translate table: digits fold to 0, control characters and whitespace to a space.
_TABLE = bytes(
    48 if 48 <= b <= 57 else 32 if (b < 32 and b != _SEP) or b == 127 else b for b in range(256)
)


def _batch_bytes(texts: Sequence[str]) -> np.ndarray:
    """Lower-case UTF-8 bytes of the batch, one space padding each text, 0x01 between texts."""
    joined = "\x01".join(texts).lower().encode("utf-8", "replace")
    body = b" " + joined.replace(b"\x01", b" \x01 ").translate(_TABLE) + b" "
    return np.frombuffer(body, dtype=np.uint8)


def hashed_ngrams(texts: Sequence[str], sizes: Sequence[int],
                  bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(document index, bucket) for every byte n-gram occurrence in the batch."""
    raw = _batch_bytes(texts)
    seps_before = np.concatenate([[0], np.cumsum(raw == _SEP)])
    values = raw.astype(np.uint64)
    shift = np.uint64(64 - bits)
    docs, buckets = [], []
    with np.errstate(over="ignore"):
        for n in sizes:
            m = len(raw) - n + 1
            if m <= 0:
                continue
            h = np.full(m, np.uint64(n) * _GOLDEN, dtype=np.uint64)
            for k in range(n):
                h = (h ^ values[k:k + m]) * _PRIME
            valid = seps_before[n:n + m] == seps_before[:m]
            docs.append(seps_before[:m][valid])
            buckets.append((h[valid] * _GOLDEN) >> shift)
    if not docs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(docs), np.concatenate(buckets).astype(np.int64)


class ByteNgrams(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Counts of hashed byte n-grams, ``2**bits`` columns; stateless like a hashing vectorizer."""

    def __init__(self, sizes: tuple[int, ...] = (3, 4, 5), bits: int = 18) -> None:
        self.sizes = sizes
        self.bits = bits

    def fit(self, X: Sequence[str], y: Any = None) -> ByteNgrams:
        """Nothing to learn; kept for the estimator API."""
        self.n_features_out_ = 1 << self.bits
        return self

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        """Occurrence matrix of shape ``(len(X), 2**bits)``.

        A repeated n-gram stays as repeated entries of 1 (not summed into one count): matrix
        products and ``TfidfTransformer`` treat them as counts, and skipping the sort that
        summing needs halves the cost. The rows are in order, so the CSR is built directly.
        """
        texts = [t.replace("\x01", " ") for t in X]
        doc, bucket = hashed_ngrams(texts, self.sizes, self.bits)
        order = np.argsort(doc, kind="stable")  # merges the already-sorted runs per size
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=len(texts)), out=indptr[1:])
        return sp.csr_matrix((np.ones(len(doc), dtype=np.float64), bucket[order], indptr),
                             shape=(len(texts), 1 << self.bits))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Buckets have no names: ``bytes#<bucket>``."""
        return np.asarray([f"bytes#{i}" for i in range(1 << self.bits)], dtype=object)
