"""``triage train``: compare candidates, tune the urgent threshold, fit, measure, save."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from triage import corpus as corpus_mod
from triage import registry
from triage.classify import (
    CANDIDATES,
    MACRO_F1_TOLERANCE,
    THRESHOLD_BOUNDS,
    URGENT_RECALL_TARGET,
    Model,
    choose,
    compare,
    results_table,
    tune_urgent_threshold,
)
from triage.config import CATEGORIES, Settings
from triage.evaluate import evaluate, false_alarms
from triage.route import Rules
from triage.safety import SafetyRules, scan


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    folder: Path
    manifest: dict[str, Any]


def library_versions() -> dict[str, str]:
    """Versions of the libraries a loaded artefact depends on."""
    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "triage"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def train(settings: Settings, safety: SafetyRules, *, corpus_path: Path,
          extra: Sequence[Path] = (), candidates: Sequence[str] | None = None, folds: int = 5,
          recall_target: float = URGENT_RECALL_TARGET, now: datetime | None = None,
          progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train on the corpus's train split (plus ``extra`` labelled files), save a new version."""
    examples = corpus_mod.load(corpus_path)
    for path in extra:
        examples += [e for e in corpus_mod.load(path)]
    train_set = [e for e in examples if e.split == "train"]
    test_set = [e for e in examples if e.split == "test"]
    if not train_set or not test_set:
        raise ValueError("the corpus needs both train and test examples")
    texts = [e.text for e in train_set]
    labels = [e.label for e in train_set]

    results, oof = compare(texts, labels, folds=folds, names=candidates, progress=progress)
    chosen = choose(results)
    y = np.array([CATEGORIES.index(label) for label in labels])
    forced = np.array([any(h.action == "urgent" for h in scan(t, safety)) for t in texts])
    threshold = tune_urgent_threshold(oof[chosen.name], y, target=recall_target, forced=forced)

    if progress:
        progress(f"fitting {chosen.name} on {len(texts)} messages")
    pipeline = CANDIDATES[chosen.name]()
    pipeline.fit(texts, labels)

    created = now or datetime.now(UTC)
    data_sha = corpus_mod.sha256(corpus_path)
    version = f"{created:%Y%m%d-%H%M%S}-{data_sha[:8]}"
    model = Model(pipeline, version=version, urgent_threshold=threshold, safety=safety)
    rules = Rules.from_settings(settings, threshold)
    if progress:
        progress("evaluating on the test split")
    test_report = evaluate(model, rules, [e.text for e in test_set], [e.label for e in test_set])
    alarms = false_alarms(model, rules, settings.eval_dir / "real-chatter.jsonl")

    manifest: dict[str, Any] = {
        "version": version,
        "created_at": created.isoformat(),
        "candidate": chosen.name,
        "urgent_threshold": threshold,
        "libraries": library_versions(),
        "python_executable": sys.executable,
        "training_data": {
            "file": str(corpus_path),
            "sha256": data_sha,
            "extra": {str(p): corpus_mod.sha256(p) for p in extra},
            "train_messages": len(train_set),
            "test_messages": len(test_set),
        },
        "selection": {
            "rule": ("fastest one message at a time (batch speed breaking ties) among "
                     f"candidates within {MACRO_F1_TOLERANCE} "
                     f"of the best {folds}-fold CV macro-F1; urgent threshold: highest in "
                     f"{list(THRESHOLD_BOUNDS)} reaching {recall_target} out-of-fold "
                     "urgent recall, counting messages the safety net sends to urgent"),
            "folds": folds,
            "candidates": results_table(results),
        },
        "metrics": {"test": test_report, "real_chatter": alarms},
    }
    folder = registry.save(settings.models_dir, pipeline, manifest, settings.model_signing_key)
    return TrainResult(folder=folder, manifest=registry.read_manifest(settings.models_dir,
                                                                      version))
