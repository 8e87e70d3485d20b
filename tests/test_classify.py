"""The classifier: threshold tuning from tables, and the shipped model's batch prediction."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from triage.classify import CANDIDATES, Model, load_model, tune_urgent_threshold, urgent_decisions
from triage.cli import classify_stream, parse_classify_line
from triage.config import CATEGORIES, load
from triage.route import Rules, decide
from triage.safety import load_rules

U, CR, CO, EN, CH = range(5)


def rows(*probs: tuple[float, ...]) -> np.ndarray:
    return np.array(probs, dtype=float)


@pytest.mark.parametrize(("threshold", "expected"), [
    (0.5, [CR, U, CH]),
    (0.3, [U, U, CH]),
    (0.05, [U, U, U]),
])
def test_urgent_decisions(threshold: float, expected: list[int]) -> None:
    proba = rows((0.35, 0.65, 0, 0, 0), (0.9, 0.1, 0, 0, 0), (0.1, 0, 0, 0, 0.9))
    assert urgent_decisions(proba, threshold).tolist() == expected


def test_tuned_threshold_is_the_highest_reaching_the_recall_target() -> None:
    # four urgent rows with urgent probability 0.9, 0.6, 0.4, 0.2; one non-urgent row
    proba = rows((0.9, 0.1, 0, 0, 0), (0.6, 0.4, 0, 0, 0), (0.4, 0.6, 0, 0, 0),
                 (0.2, 0, 0, 0, 0.8), (0.3, 0, 0, 0, 0.7))
    y = np.array([U, U, U, U, CH])
    assert tune_urgent_threshold(proba, y, target=0.5) == 0.6
    assert tune_urgent_threshold(proba, y, target=0.75) == 0.4
    assert tune_urgent_threshold(proba, y, target=1.0) == 0.2
    # the safety net catches the 0.2 row: a higher threshold reaches full recall
    forced = np.array([False, False, False, True, False])
    assert tune_urgent_threshold(proba, y, target=1.0, forced=forced) == 0.4
    never = rows((0.0, 0, 0, 0, 1.0))
    assert tune_urgent_threshold(never, np.array([U]), target=1.0) == 0.1  # the floor


@pytest.fixture(scope="module")
def model(shipped_models: Path) -> Model:
    return load_model(shipped_models, load_rules())


def test_shipped_model_routes_clear_cases(model: Model) -> None:
    rules = Rules.from_settings(load(), model.urgent_threshold)
    texts = {
        "there's a man outside my door with a knife right now please hurry": "urgent",
        "someone stole my bike from outside the library last tuesday, how do i report it":
            "crime_report",
        "the officer who came round was rude and never called me back, I want to complain":
            "complaint",
        "how do I apply for a shotgun licence renewal?": "enquiry",
        "thanks to the dog unit for the calendar, brilliant pics 🐶": "chatter",
    }
    decisions = [decide(p, rules) for p in model.predict(list(texts))]
    assert [d.category for d in decisions] == list(texts.values())


def test_batch_prediction_equals_one_at_a_time(model: Model) -> None:
    texts = ["help he's got a knife", "lost my keys", "this traffic is killing me", "a" * 3000]
    batch = model.predict(texts)
    single = [model.predict([t])[0] for t in texts]
    for b, s in zip(batch, single, strict=True):
        assert b.probabilities == pytest.approx(s.probabilities)
        assert b.features == s.features
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-6 for p in batch)
    assert set(batch[0].probabilities) == set(CATEGORIES)


@pytest.mark.parametrize("candidate", ["batch_word+byte4+logreg", "word+char_tfidf+svm_sigmoid"])
def test_fast_probabilities_equal_the_pipelines(candidate: str) -> None:
    texts = ["help he's got a knife", "lost my keys", "this traffic is killing me",
             "my bike was stolen", "the officer was rude", "great job today", "ok"] * 3
    labels = [CATEGORIES[i % 5] for i in range(len(texts))]
    pipeline = CANDIDATES[candidate]()
    if candidate.startswith("batch"):
        pipeline.set_params(features__min_df=1)
    pipeline.fit(texts, labels)
    model = Model(pipeline, version="t", urgent_threshold=0.5, safety=load_rules())
    order = [list(pipeline.classes_).index(c) for c in CATEGORIES]
    expected = pipeline.predict_proba(texts)[:, order]
    assert model.probabilities(texts) == pytest.approx(expected, abs=1e-9)


def test_projection_and_matrix_paths_agree(model: Model) -> None:
    texts = ["help he's got a knife", "lost my keys", "this traffic is killing me", "",
             "someone is smashing my car window with a hammer right now"] * 2
    assert model._projection is not None
    matrix_path = Model(model.pipeline, version=model.version,
                        urgent_threshold=model.urgent_threshold, safety=model.safety)
    matrix_path._projection = None
    for fast, slow in zip(model.predict(texts), matrix_path.predict(texts), strict=True):
        assert fast.probabilities == pytest.approx(slow.probabilities, abs=1e-9)
        assert fast.features == slow.features and fast.safety == slow.safety


def test_reasons_name_the_strongest_features(model: Model) -> None:
    [prediction] = model.predict(["someone is smashing my car window with a hammer right now"])
    assert prediction.features and all(isinstance(f, str) for f in prediction.features)
    [repeated] = model.predict(["knife knife knife knife outside now help help"])
    assert len(repeated.features) == len(set(repeated.features)) == 3


@pytest.mark.parametrize(("line", "problem"), [
    (b"not json", "not valid JSON"),
    (b"[1]", "JSON object"),
    (b'{"text": "hi"}', "'id'"),
    (b'{"id": "", "text": "hi"}', "'id'"),
    (b'{"id": true, "text": "hi"}', "'id'"),
    (b'{"id": 1}', "'text'"),
    (b'{"id": 1, "text": "  "}', "empty"),
])
def test_malformed_classify_lines(line: bytes, problem: str) -> None:
    result = parse_classify_line(line)
    assert isinstance(result, str) and problem in result


def test_classify_stream_keeps_going_after_bad_lines(model: Model) -> None:
    rules = Rules.from_settings(load(), model.urgent_threshold)
    source = io.BytesIO(b'{"id": "a", "text": "my shed was broken into overnight"}\n'
                        b'garbage\n\n'
                        b'{"id": 7, "text": "he is kicking the door in now", "kind": "dm"}\n')
    sink = io.BytesIO()
    good, bad = classify_stream(model, rules, source, sink, batch_size=2)
    out = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert (good, bad) == (2, 1)
    assert out[1] == {"line": 2, "error": "not valid JSON"}
    assert [o.get("id") for o in out] == ["a", None, "7"]
    for o in (out[0], out[2]):
        assert set(o) == {"id", "category", "priority", "queue", "confidence", "review",
                          "reasons", "model_version"}
        assert o["model_version"] == model.version
