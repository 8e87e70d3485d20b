"""Artefacts: sha256 and HMAC checks before loading; promotion gates; rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from triage import registry
from triage.registry import ModelError


@pytest.fixture
def models(tmp_path: Path, shipped_models: Path) -> tuple[Path, str]:
    """A private copy of the shipped promoted version, promoted with no history."""
    target = tmp_path / "models"
    version = registry.promoted(shipped_models)
    target.mkdir()
    shutil.copytree(shipped_models / version, target / version)
    (target / registry.REGISTRY).write_text(json.dumps({"promoted": version, "history": []}))
    return target, version


def _clone(models_dir: Path, version: str, new: str, **metrics: Any) -> str:
    shutil.copytree(models_dir / version, models_dir / new)
    path = models_dir / new / registry.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["version"] = new
    manifest["metrics"]["test"].update(metrics)
    path.write_text(json.dumps(manifest))
    return new


def test_shipped_model_verifies_and_loads(models: tuple[Path, str]) -> None:
    models_dir, version = models
    artefact = registry.load_verified(models_dir, version, None)
    assert artefact.version == version
    assert hasattr(artefact.pipeline, "predict_proba")


def test_tampered_artefact_is_refused(models: tuple[Path, str]) -> None:
    models_dir, version = models
    with (models_dir / version / registry.ARTEFACT).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="does not match the manifest"):
        registry.load_verified(models_dir, version, None)


def test_signing_key_requires_a_valid_signature(models: tuple[Path, str]) -> None:
    models_dir, version = models
    with pytest.raises(ModelError, match="not signed"):
        registry.verify(models_dir, version, "s3cret")
    path = models_dir / version / registry.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["signature"] = {"alg": "hmac-sha256", "value": registry.sign(manifest, "s3cret")}
    path.write_text(json.dumps(manifest))
    assert registry.verify(models_dir, version, "s3cret")["version"] == version
    with pytest.raises(ModelError, match="signature is not valid"):
        registry.verify(models_dir, version, "another-key")
    manifest["urgent_threshold"] = 0.99  # a tampered manifest no longer matches its HMAC
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="signature is not valid"):
        registry.verify(models_dir, version, "s3cret")


def test_promotion_gates_and_rollback(models: tuple[Path, str]) -> None:
    models_dir, version = models
    current = registry.read_manifest(models_dir, version)["metrics"]["test"]
    weak = _clone(models_dir, version, "v-weak-urgent", urgent_recall=0.97)
    with pytest.raises(ModelError, match="urgent recall"):
        registry.promote(models_dir, weak, None)
    worse = _clone(models_dir, version, "v-worse-f1", urgent_recall=0.99,
                   macro_f1=current["macro_f1"] - 0.01)
    with pytest.raises(ModelError, match="below the current model"):
        registry.promote(models_dir, worse, None)
    better = _clone(models_dir, version, "v-better", urgent_recall=0.99,
                    macro_f1=current["macro_f1"] + 0.01)
    assert registry.promote(models_dir, better, None)["promoted"] == better
    assert registry.promoted(models_dir) == better
    assert registry.rollback(models_dir, None)["promoted"] == version
    with pytest.raises(ModelError, match="nothing to roll back"):
        registry.rollback(models_dir, None)


def test_a_current_model_trained_on_other_data_is_measured_on_the_candidates_split(
        models: tuple[Path, str]) -> None:
    models_dir, version = models
    current = registry.read_manifest(models_dir, version)["metrics"]["test"]
    newer = _clone(models_dir, version, "v-new-data", urgent_recall=0.99,
                   macro_f1=current["macro_f1"] - 0.01)
    path = models_dir / newer / registry.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["training_data"]["sha256"] = "0" * 64  # trained on another corpus
    path.write_text(json.dumps(manifest))
    asked: list[str] = []

    def rescore(current_version: str, candidate: Any) -> float:
        asked.append(current_version)
        return float(candidate["metrics"]["test"]["macro_f1"]) - 0.02

    # below the current model's recorded figure, but above it on the candidate's own split
    assert registry.promote(models_dir, newer, None, rescore)["promoted"] == newer
    assert asked == [version]
    registry.rollback(models_dir, None)
    with pytest.raises(ModelError, match="on the candidate's test split"):
        registry.promote(models_dir, newer, None, lambda *_: 0.999)
    # same training data: the recorded figures compare like with like, no rescoring
    same = _clone(models_dir, version, "v-same-data", urgent_recall=0.99,
                  macro_f1=current["macro_f1"] - 0.01)
    with pytest.raises(ModelError, match="as recorded on its own test split"):
        registry.promote(models_dir, same, None, lambda *_: pytest.fail("rescored"))


def test_rescorer_measures_a_model_as_training_did(shipped_models: Path, tmp_path: Path) -> None:
    """Measured again on its own split, the promoted model gets its recorded macro-F1."""
    from triage.config import load
    from triage.evaluate import rescorer
    from triage.safety import load_rules

    settings = load(models_dir=shipped_models)
    version = registry.promoted(shipped_models)
    manifest = registry.read_manifest(shipped_models, version)
    f1 = rescorer(settings, load_rules())(version, manifest)
    assert f1 == pytest.approx(manifest["metrics"]["test"]["macro_f1"], abs=1e-9)
    moved = {**manifest, "training_data": {**manifest["training_data"],
                                           "file": str(tmp_path / "gone.jsonl")}}
    assert rescorer(settings, load_rules())(version, moved) is None
