"""Measuring a model as the service uses it: prediction plus the routing decision."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from triage import corpus, registry
from triage.classify import Model, load_model
from triage.config import CATEGORIES, URGENT, Settings
from triage.route import Decision, Rules, decide
from triage.safety import SafetyRules

BATCH = 1000


def decisions(model: Model, rules: Rules, texts: Sequence[str]) -> list[Decision]:
    """Route every text as the worker would, in batches."""
    out: list[Decision] = []
    for i in range(0, len(texts), BATCH):
        out += [decide(p, rules) for p in model.predict(texts[i:i + BATCH])]
    return out


def metrics(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro-F1, urgent recall and the confusion matrix."""
    p, r, f, support = precision_recall_fscore_support(
        labels, predicted, labels=list(CATEGORIES), zero_division=0)
    per_class = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                     "support": int(support[i])} for i, c in enumerate(CATEGORIES)}
    present = [i for i, c in enumerate(CATEGORIES) if support[i] > 0]
    return {
        "messages": len(labels),
        "per_class": per_class,
        "macro_f1": float(np.mean([f[i] for i in present])) if present else 0.0,
        "urgent_recall": per_class[URGENT]["recall"] if support[0] else None,
        "accuracy": float(np.mean(np.array(labels) == np.array(predicted))) if labels else 0.0,
        "confusion": {"labels": list(CATEGORIES),
                      "matrix": confusion_matrix(labels, predicted,
                                                 labels=list(CATEGORIES)).tolist()},
    }


def evaluate(model: Model, rules: Rules, texts: Sequence[str],
             labels: Sequence[str]) -> dict[str, Any]:
    """Metrics of routed decisions against labels, plus the share sent to review."""
    routed = decisions(model, rules, texts)
    report = metrics(labels, [d.category for d in routed])
    report["review_share"] = sum(d.review for d in routed) / max(1, len(routed))
    report["safety_net_changes"] = sum(
        any(r.startswith("safety:") for r in d.reasons) for d in routed)
    return report


def false_alarms(model: Model, rules: Rules, path: Path) -> dict[str, Any] | None:
    """On real chatter (``real-chatter.jsonl``): the share routed to urgent and crime_report."""
    if not path.exists():
        return None
    texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
    routed = decisions(model, rules, texts)
    n = max(1, len(routed))
    return {
        "file": path.name,
        "messages": len(routed),
        "urgent_share": sum(d.category == URGENT for d in routed) / n,
        "crime_report_share": sum(d.category == "crime_report" for d in routed) / n,
        "review_share": sum(d.review for d in routed) / n,
        "review_with_urgent_sla_share": sum(
            d.review and d.priority == rules.routes[URGENT].priority for d in routed) / n,
        "chatter_share": sum(d.category == "chatter" for d in routed) / n,
    }


def rescorer(settings: Settings, safety: SafetyRules) -> registry.Rescore:
    """For promotion: the current model's macro-F1 on a candidate's test split.

    The candidate's manifest names its corpus file and sha256; when that file is no longer
    there unchanged, None (the gate then compares the recorded figures and says so).
    """
    def rescore(current_version: str, candidate: Mapping[str, Any]) -> float | None:
        data = candidate.get("training_data", {})
        recorded = Path(str(data.get("file", "")))
        for path in (recorded, settings.models_dir.parent / recorded):
            if path.is_file() and corpus.sha256(path) == data.get("sha256"):
                break
        else:
            return None
        model = load_model(settings.models_dir, safety, version=current_version,
                           signing_key=settings.model_signing_key)
        test = [e for e in corpus.load(path) if e.split == "test"]
        report = evaluate(model, Rules.from_settings(settings, model.urgent_threshold),
                          [e.text for e in test], [e.label for e in test])
        return float(report["macro_f1"])
    return rescore


def plot_confusion(report: dict[str, Any], path: Path, title: str) -> None:
    """Write the confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(report["confusion"]["matrix"])
    labels = report["confusion"]["labels"]
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("routed as")
    ax.set_ylabel("labelled as")
    ax.set_title(title, fontsize=10)
    top = matrix.max() or 1
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > top / 2 else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_report(report: dict[str, Any], alarms: dict[str, Any] | None) -> str:
    """The human-readable text of ``triage evaluate``."""
    lines = [f"{'category':<14}{'precision':>10}{'recall':>9}{'f1':>8}{'support':>9}"]
    for c in CATEGORIES:
        m = report["per_class"][c]
        lines.append(f"{c:<14}{m['precision']:>10.3f}{m['recall']:>9.3f}{m['f1']:>8.3f}"
                     f"{m['support']:>9d}")
    lines.append("")
    lines.append(f"macro-F1       {report['macro_f1']:.4f}")
    recall = report["urgent_recall"]
    lines.append(f"urgent recall  {recall:.4f}" if recall is not None else "urgent recall  n/a")
    lines.append(f"accuracy       {report['accuracy']:.4f}")
    lines.append(f"sent to review {report['review_share']:.2%}")
    lines.append("")
    lines.append("confusion (rows: labelled, columns: routed)")
    labels = report["confusion"]["labels"]
    lines.append(" " * 14 + "".join(f"{c[:8]:>9}" for c in labels))
    for c, row in zip(labels, report["confusion"]["matrix"], strict=True):
        lines.append(f"{c:<14}" + "".join(f"{v:>9d}" for v in row))
    if alarms:
        lines.append("")
        lines.append(f"false alarms on {alarms['file']} ({alarms['messages']} real tweets, "
                     "nearly all chatter):")
        lines.append(f"  sent to urgent        {alarms['urgent_share']:.2%}   (target <= 2%)")
        lines.append(f"  sent to crime_report  {alarms['crime_report_share']:.2%}   (target <= 3%)")
        lines.append(f"  sent to review        {alarms['review_share']:.2%}   "
                     f"(with urgent SLA: {alarms['review_with_urgent_sla_share']:.2%})")
    return "\n".join(lines)
