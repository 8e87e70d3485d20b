"""The labelled corpus: reading it, its stable train/test split, and its quality figures."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from triage.config import CATEGORIES

TEST_SHARE_PERCENT = 20
NEAR_DUPLICATE_JACCARD = 0.5
_WORDS = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message."""

    id: str
    text: str
    label: str
    split: str
    kind: str = "mention"
    platform: str = "x"


class CorpusError(ValueError):
    """A corpus line is unusable; the message names the line."""


def split_of(example_id: str) -> str:
    """Stable split from the id's hash: about 20% test, the rest train."""
    bucket = int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < TEST_SHARE_PERCENT else "train"


def load(path: Path) -> list[Example]:
    """Read a corpus JSON-lines file (``id``, ``text``, ``label``; optional ``split``)."""
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                label = row["label"]
                if label not in CATEGORIES:
                    raise CorpusError(f"{path}:{number}: unknown label {label!r}")
                example_id = str(row["id"])
                examples.append(Example(
                    id=example_id, text=str(row["text"]), label=label,
                    split=row.get("split") or split_of(example_id),
                    kind=row.get("kind", "mention"), platform=row.get("platform", "x")))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}:{number}: {type(exc).__name__}: {exc}") from None
    return examples


def sha256(path: Path) -> str:
    """Hex sha256 of the corpus file (recorded in every model manifest)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shingles(text: str, n: int = 3) -> set[str]:
    words = _WORDS.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def near_duplicate_pairs(texts: Sequence[str],
                         threshold: float = NEAR_DUPLICATE_JACCARD) -> list[tuple[int, int, float]]:
    """Pairs (i < j) whose word-3-shingle Jaccard similarity is at least ``threshold``."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for s in _shingles(text):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocab)))
    sizes = np.asarray(m.sum(axis=1)).ravel()
    inter = sp.triu(m @ m.T, k=1).tocoo()
    union = sizes[inter.row] + sizes[inter.col] - inter.data
    jaccard = inter.data / np.maximum(union, 1)
    keep = jaccard >= threshold
    return [(int(i), int(j), float(s))
            for i, j, s in zip(inter.row[keep], inter.col[keep], jaccard[keep], strict=True)]


def stats(examples: Sequence[Example]) -> dict[str, Any]:
    """Class mix, split sizes, kinds, platforms, lengths and near-duplicate figures."""
    texts = [e.text for e in examples]
    pairs = near_duplicate_pairs(texts)
    involved = {i for i, _, _ in pairs} | {j for _, j, _ in pairs}
    cross = sum(1 for i, j, _ in pairs if examples[i].split != examples[j].split)
    words = np.array([len(_WORDS.findall(t.lower())) for t in texts])
    return {
        "messages": len(examples),
        "classes": dict(Counter(e.label for e in examples).most_common()),
        "splits": {s: dict(Counter(e.label for e in examples if e.split == s))
                   for s in ("train", "test")},
        "kinds": dict(Counter(e.kind for e in examples).most_common()),
        "platforms": dict(Counter(e.platform for e in examples).most_common()),
        "words_median": float(np.median(words)) if len(words) else 0.0,
        "words_p90": float(np.percentile(words, 90)) if len(words) else 0.0,
        "exact_duplicates": len(texts) - len({t.strip().lower() for t in texts}),
        "near_duplicate_pairs": len(pairs),
        "near_duplicate_share": len(involved) / max(1, len(examples)),
        "near_duplicate_pairs_across_split": cross,
        "near_duplicate_threshold": NEAR_DUPLICATE_JACCARD,
    }


def build(parts: Iterable[Path], out: Path) -> list[Example]:
    """Merge hand-written part files into one corpus with stable ids and splits.

    Exact duplicates (case- and space-insensitive) are dropped; ids are ``c-`` plus a hash of
    the text, so they do not change when parts are re-ordered.
    """
    seen: set[str] = set()
    examples = []
    for part in sorted(parts):
        for number, line in enumerate(part.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{part}:{number}: {exc}") from None
            text = " ".join(str(row["text"]).split())
            key = text.lower()
            if not text or key in seen:
                continue
            if row["label"] not in CATEGORIES:
                raise CorpusError(f"{part}:{number}: unknown label {row['label']!r}")
            seen.add(key)
            example_id = "c-" + hashlib.sha256(key.encode()).hexdigest()[:12]
            examples.append(Example(id=example_id, text=str(row["text"]), label=row["label"],
                                    split=split_of(example_id), kind=row.get("kind", "mention"),
                                    platform=row.get("platform", "x")))
    examples.sort(key=lambda e: e.id)
    with out.open("w", encoding="utf-8") as handle:
        for e in examples:
            handle.write(json.dumps({"id": e.id, "text": e.text, "label": e.label,
                                     "split": e.split, "kind": e.kind, "platform": e.platform},
                                    ensure_ascii=False) + "\n")
    return examples
