"""Throughput of `triage classify` on one core, batched and one message at a time.

    .venv/bin/python benchmarks/bench_classify.py [--messages 20000] [--json]

Runs in one process pinned to one CPU with BLAS threads set to 1, and measures, in the same run
so that machine noise hits every figure alike:

* the I/O floor: parse each JSON line and write a JSON line, no model;
* the shipped model inside ``classify_stream`` (what the command does), batches of 1,000;
* the same, one message at a time;
* a baseline: scikit-learn's own word+char TF-IDF pipeline with the same linear model,
  predicting batches of 1,000 (model only, no I/O), to show what the batch featurizer buys.

The whole command can be timed from outside too, e.g.
``/usr/bin/time -v .venv/bin/triage classify < msgs.jsonl > /dev/null``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import FeatureUnion, Pipeline  # noqa: E402

from triage import corpus  # noqa: E402
from triage.classify import load_model  # noqa: E402
from triage.cli import classify_stream, parse_classify_line  # noqa: E402
from triage.config import load  # noqa: E402
from triage.route import Rules  # noqa: E402
from triage.safety import load_rules  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _lines(texts: list[str], n: int) -> bytes:
    return b"\n".join(orjson.dumps({"id": f"m{i}", "text": texts[i % len(texts)]})
                      for i in range(n)) + b"\n"


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _best_of(runs: int, func: Any) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--single", type=int, default=2000, help="messages one at a time")
    parser.add_argument("--runs", type=int, default=3, help="best of N for each figure")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", help="version to measure (default: the promoted one)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    settings = load(models_dir=ROOT / "models")
    model = load_model(settings.models_dir, load_rules(), version=args.model)
    rules = Rules.from_settings(settings, model.urgent_threshold)
    examples = corpus.load(ROOT / "models" / "corpus" / "corpus.jsonl")
    texts = [e.text for e in examples if e.split == "test"]
    data = _lines(texts, args.messages)
    single = _lines(texts, args.single)

    def io_floor() -> None:
        out = io.BytesIO()
        for line in io.BytesIO(data):
            parsed = parse_classify_line(line)
            assert isinstance(parsed, tuple)
            out.write(orjson.dumps({"id": parsed[0], "category": "chatter"}) + b"\n")

    def batched() -> None:
        classify_stream(model, rules, io.BytesIO(data), io.BytesIO(), 1000)

    def one_at_a_time() -> None:
        classify_stream(model, rules, io.BytesIO(single), io.BytesIO(), 1)

    train = [e for e in examples if e.split == "train"]
    baseline = Pipeline([
        ("features", FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2,
                                      sublinear_tf=True))])),
        ("clf", LogisticRegression(C=20.0, max_iter=3000))])
    baseline.fit([e.text for e in train], [e.label for e in train])
    sample = [texts[i % len(texts)] for i in range(args.messages)]

    def sklearn_baseline() -> None:
        for i in range(0, len(sample), 1000):
            baseline.predict_proba(sample[i:i + 1000])

    def model_only() -> None:
        for i in range(0, len(sample), 1000):
            model.probabilities(sample[i:i + 1000])

    batched()  # warm-up
    figures = {
        "messages": args.messages,
        "io_floor_msgs_per_s": _rate(args.messages, _best_of(args.runs, io_floor)),
        "classify_batched_msgs_per_s": _rate(args.messages, _best_of(args.runs, batched)),
        "classify_one_at_a_time_msgs_per_s": _rate(args.single,
                                                   _best_of(args.runs, one_at_a_time)),
        "model_only_batched_msgs_per_s": _rate(args.messages, _best_of(args.runs, model_only)),
        "sklearn_word_char_tfidf_batched_msgs_per_s": _rate(
            args.messages, _best_of(args.runs, sklearn_baseline)),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_version": model.version,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"triage classify on one core, model {model.version}, "
          f"{args.messages} messages (best of {args.runs})")
    rows = [
        ("I/O floor (parse + write JSON, no model)", figures["io_floor_msgs_per_s"]),
        ("classify, batches of 1,000 (target >= 20,000)", figures["classify_batched_msgs_per_s"]),
        ("classify, one message at a time", figures["classify_one_at_a_time_msgs_per_s"]),
        ("model only, batches of 1,000", figures["model_only_batched_msgs_per_s"]),
        ("baseline: sklearn word+char TF-IDF, batches", figures[
            "sklearn_word_char_tfidf_batched_msgs_per_s"]),
    ]
    for name, value in rows:
        print(f"  {name:<48}{value:>10,.0f} msg/s")
    print(f"  {'peak RSS':<48}{figures['peak_rss_mib']:>10,.0f} MiB")


if __name__ == "__main__":
    main()
