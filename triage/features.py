"""Batch n-gram features: hashed words, word pairs and byte n-grams, computed with numpy.

:class:`BatchNgrams` is a scikit-learn transformer doing the work of ``CountVectorizer`` for
words and word bigrams plus a character ``HashingVectorizer``, but over the concatenated bytes
of a whole batch with numpy rather than document by document in Python. scikit-learn's
vectorizers spend most of their time in that per-document Python loop; here a batch of 1,000
short messages costs a few milliseconds (``benchmarks/bench_classify.py`` prints both).

Text is lower-cased, digits fold to 0 and control characters to spaces. A word is a run of
letters, digits, apostrophes or non-ASCII bytes (so accented words and emoji are tokens);
ASCII punctuation separates words. Byte n-grams of the same text see through typos and
text-speak. Buckets are named after the training n-gram that filled them most, so the
strongest features of a decision can still be shown to a person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

_SEP = 1  # byte that separates documents in the batch
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(0x100000001B3)
_MAX_WORD = 48  # bytes of a word that count towards its hash
# bytes.translate table: digits fold to 0, control characters and whitespace to a space.
_TABLE = bytes(
    48 if 48 <= b <= 57 else 32 if (b < 32 and b != _SEP) or b == 127 else b for b in range(256)
)
_WORD_BYTE = np.array([chr(b).isalnum() or b == ord("'") or b >= 0x80 for b in range(256)])
with np.errstate(over="ignore"):
    _POWERS = np.cumprod(np.full(_MAX_WORD, _PRIME, dtype=np.uint64), dtype=np.uint64)


def batch_bytes(texts: Sequence[str]) -> np.ndarray:
    """Normalised UTF-8 bytes of a batch: a space around each text, 0x01 between texts."""
    joined = "\x01".join(t.replace("\x01", " ") for t in texts).lower()
    body = b" " + joined.encode("utf-8", "replace").replace(b"\x01", b" \x01 ") + b" "
    return np.frombuffer(body.translate(_TABLE), dtype=np.uint8)


def _mix(h: np.ndarray, bits: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(29))) * _GOLDEN
    return (h >> np.uint64(64 - bits)).astype(np.int64)


def word_spans(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) byte offsets of every word in the batch."""
    word = _WORD_BYTE[raw]
    edges = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def word_hashes(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each word, all words at once."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64)
    lengths = np.minimum(ends - starts, _MAX_WORD)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + offsets
    with np.errstate(over="ignore"):
        values = raw[positions].astype(np.uint64) * _POWERS[offsets]
    sums: np.ndarray = np.add.reduceat(values, np.cumsum(lengths) - lengths, dtype=np.uint64)
    return sums


def byte_ngrams(raw: np.ndarray, seps_before: np.ndarray, sizes: Sequence[int],
                bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(document index, bucket) of every byte n-gram occurrence."""
    values = raw.astype(np.uint64)
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
            buckets.append(_mix(h[valid], bits))
    if not docs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(docs), np.concatenate(buckets)


class BatchNgrams(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """TF-IDF of hashed words, word bigrams and byte n-grams, for a batch at once.

    Columns ``[0, 2**word_bits)`` are words and word pairs; the next ``2**byte_bits`` are
    byte n-grams of ``byte_sizes`` (none when it is empty). Each column is weighted by its
    inverse document frequency learned in ``fit`` (columns seen in fewer than ``min_df``
    training documents get weight 0), and the word block and the byte block of each row are
    L2-normalised separately, as a ``FeatureUnion`` of two ``TfidfVectorizer`` would do.
    A repeated n-gram stays as repeated entries rather than one summed count: matrix products
    add them up, and skipping the sort that summing needs halves the cost.
    """

    def __init__(self, words: bool = True, word_bits: int = 18, bigrams: bool = True,
                 byte_sizes: tuple[int, ...] = (3, 4, 5), byte_bits: int = 18,
                 min_df: int = 2) -> None:
        self.words = words
        self.word_bits = word_bits
        self.bigrams = bigrams
        self.byte_sizes = byte_sizes
        self.byte_bits = byte_bits
        self.min_df = min_df

    def runs(self, texts: Sequence[str]) -> tuple[list[tuple[bool, np.ndarray, np.ndarray]],
                                                    dict[str, Any]]:
        """The batch's n-gram occurrences as (is a word column, document index, column) runs,
        each in document order: what :meth:`transform` and :class:`Projection` are built on."""
        raw = batch_bytes(texts)
        seps_before = np.concatenate([[0], np.cumsum(raw == _SEP)])
        starts, ends = word_spans(raw)
        hashes = word_hashes(raw, starts, ends)
        word_doc = seps_before[starts]
        runs = [(True, word_doc, _mix(hashes, self.word_bits))] if self.words else []
        pairs = np.zeros(0, dtype=bool)
        if self.words and self.bigrams and len(hashes) > 1:
            pairs = word_doc[1:] == word_doc[:-1]
            with np.errstate(over="ignore"):
                joined = (hashes[:-1][pairs] * _GOLDEN) ^ (hashes[1:][pairs] + _PRIME)
            runs.append((True, word_doc[:-1][pairs], _mix(joined, self.word_bits)))
        if self.byte_sizes:
            offset = 1 << self.word_bits
            for n in self.byte_sizes:
                doc, bucket = byte_ngrams(raw, seps_before, (n,), self.byte_bits)
                runs.append((False, doc, bucket + offset))
        spans = {"raw": raw, "starts": starts, "ends": ends, "pairs": pairs}
        return runs, spans

    def _columns(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        runs, spans = self.runs(texts)
        spans["cols"] = [col for _, _, col in runs]
        if not runs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, spans
        return (np.concatenate([doc for _, doc, _ in runs]),
                np.concatenate([col for _, _, col in runs]), spans)

    def fit(self, X: Sequence[str], y: Any = None) -> BatchNgrams:
        """Learn each column's IDF weight and the names of word buckets."""
        texts = list(X)
        self.n_features_out_ = (1 << self.word_bits) + (
            (1 << self.byte_bits) if self.byte_sizes else 0)
        doc, col, spans = self._columns(texts)
        present = np.unique(doc * self.n_features_out_ + col) % self.n_features_out_
        df = np.bincount(present, minlength=self.n_features_out_)
        idf = np.log((1 + len(texts)) / (1 + df)) + 1
        idf[df < self.min_df] = 0.0
        self.idf_ = idf.astype(np.float64)
        raw, starts, ends = spans["raw"], spans["starts"], spans["ends"]
        words = [raw[s:e].tobytes().decode("utf-8", "replace") for s, e in zip(
            starts.tolist(), ends.tolist(), strict=True)]
        seen: dict[int, Counter[str]] = {}
        if not self.words:
            words = []
        for bucket, word in zip(spans["cols"][0].tolist() if self.words else [], words,
                                strict=True):
            seen.setdefault(bucket, Counter())[word] += 1
        if self.words and self.bigrams and len(words) > 1:
            pairs = [f"{a} {b}" for a, b, keep in zip(words, words[1:], spans["pairs"].tolist(),
                                                      strict=False) if keep]
            for bucket, pair in zip(spans["cols"][1].tolist(), pairs, strict=True):
                seen.setdefault(bucket, Counter())[pair] += 1
        self.names_ = {b: c.most_common(1)[0][0] for b, c in seen.items() if idf[b] > 0}
        return self

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF matrix of shape ``(len(X), n_features_out_)``, blocks L2-normalised."""
        n_docs = len(X)
        doc, col, _ = self._columns(list(X))
        order = np.argsort(doc, kind="stable")  # merges the runs, each already in order
        doc, col = doc[order], col[order]
        weight = self.idf_[col]
        keep = weight > 0
        doc, col, weight = doc[keep], col[keep], weight[keep]
        is_word = col < (1 << self.word_bits)
        for block in (is_word, ~is_word):
            norms = np.sqrt(np.bincount(doc[block], weights=weight[block] ** 2,
                                        minlength=n_docs))
            weight[block] /= np.maximum(norms[doc[block]], 1e-12)
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=n_docs), out=indptr[1:])
        return sp.csr_matrix((weight, col, indptr), shape=(n_docs, self.n_features_out_))

    def feature_names(self) -> dict[int, str]:
        """Readable names of the word and word-pair columns seen in training."""
        return dict(self.names_)


class Projection:
    """``ngrams.transform(texts) @ weights + intercept`` without building the matrix.

    The TF-IDF rows are only ever multiplied by a linear model's weights, so each column's
    IDF is folded into its weights once, and a batch costs one gather of a table row per
    n-gram occurrence and one sum per document and block: no sort, no sparse matrix. The
    word entries (document, column, TF-IDF value) are returned too, for naming the strongest
    features of a decision. ``tests/test_features.py`` checks both against ``transform``.
    """

    def __init__(self, ngrams: BatchNgrams, weights: np.ndarray,
                 intercept: np.ndarray | None = None) -> None:
        idf = ngrams.idf_
        self.ngrams = ngrams
        self.k = weights.shape[1]
        self.intercept = np.zeros(self.k) if intercept is None else intercept
        # one row per column: IDF-scaled weights, then the squared IDF for the block norm
        self.table = np.ascontiguousarray(np.hstack([idf[:, None] * weights, (idf**2)[:, None]]))
        self.idf = idf

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """(scores of shape ``(len(texts), k)``, word entries ``(doc, col, value)``)."""
        n, k = len(texts), self.k
        scores = np.tile(self.intercept, (n, 1))
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return scores, (empty, empty, np.zeros(0))
        runs, _ = self.ngrams.runs(texts)
        # per block: sums of IDF-scaled weights, then of squared IDFs
        sums = {True: np.zeros((n, k + 1)), False: np.zeros((n, k + 1))}
        for is_word, doc, col in runs:
            if len(doc):
                # a run is in document order: a document's segment starts where doc changes
                first = np.flatnonzero(np.concatenate([[True], doc[1:] != doc[:-1]]))
                rows = np.take(self.table, col, axis=0)
                sums[is_word][doc[first]] += np.add.reduceat(rows, first, axis=0)
        norms = {block: np.maximum(np.sqrt(s[:, k]), 1e-12) for block, s in sums.items()}
        for block, s in sums.items():
            scores += s[:, :k] / norms[block][:, None]
        word_norm = norms[True]
        words = [(doc, col) for is_word, doc, col in runs if is_word]
        if words:
            doc = np.concatenate([d for d, _ in words])
            col = np.concatenate([c for _, c in words])
        else:
            doc = col = np.zeros(0, dtype=np.int64)
        return scores, (doc, col, np.take(self.idf, col) / word_norm[doc])
