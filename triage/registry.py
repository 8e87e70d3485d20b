"""Model artefacts on disk: versioned folders with a manifest, verified loading, promotion.

Layout under ``models/``::

    registry.json              {"promoted": VERSION, "history": [older promoted versions]}
    VERSION/model.joblib       the fitted Pipeline
    VERSION/manifest.json      version, metrics, data and artefact sha256, optional HMAC

A joblib file runs code when loaded, so :func:`load_verified` checks the artefact's sha256
against the manifest (and the manifest's HMAC when a signing key is set) *before* loading.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

ARTEFACT = "model.joblib"
MANIFEST = "manifest.json"
REGISTRY = "registry.json"
#: Promotion gates (issue #2): urgent recall on the test split, and no worse macro-F1.
MIN_URGENT_RECALL = 0.98


class ModelError(Exception):
    """A model cannot be used: missing, tampered, unsigned, or refused promotion."""


@dataclass(frozen=True)
class Artefact:
    """A verified model: its manifest and the loaded pipeline."""

    manifest: Mapping[str, Any]
    pipeline: Any

    @property
    def version(self) -> str:
        """The artefact's version string."""
        return str(self.manifest["version"])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: Mapping[str, Any], key: str) -> str:
    """HMAC-SHA256 of the manifest (without its signature field)."""
    return hmac.new(key.encode(), _canonical(manifest), hashlib.sha256).hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def save(models_dir: Path, pipeline: Any, manifest: dict[str, Any],
         signing_key: str | None = None) -> Path:
    """Write a new version folder; return it. The manifest gains the artefact's sha256."""
    folder = models_dir / str(manifest["version"])
    folder.mkdir(parents=True, exist_ok=False)
    artefact = folder / ARTEFACT
    joblib.dump(pipeline, artefact, compress=3)
    manifest = {**manifest, "artefact": {"file": ARTEFACT, "sha256": sha256_file(artefact),
                                         "bytes": artefact.stat().st_size}}
    if signing_key:
        manifest["signature"] = {"alg": "hmac-sha256", "value": sign(manifest, signing_key)}
    _write_json(folder / MANIFEST, manifest)
    return folder


def read_manifest(models_dir: Path, version: str) -> dict[str, Any]:
    """The manifest of one version, unverified."""
    path = models_dir / version / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no model version {version!r} in {models_dir}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"manifest of {version!r} is not valid JSON: {exc}") from None
    return data


def verify(models_dir: Path, version: str, signing_key: str | None) -> dict[str, Any]:
    """Check the artefact's sha256 and, with a key, the manifest's HMAC; return the manifest."""
    manifest = read_manifest(models_dir, version)
    expected = manifest.get("artefact", {}).get("sha256")
    path = models_dir / version / ARTEFACT
    if not path.exists():
        raise ModelError(f"model {version}: artefact {path} is missing")
    actual = sha256_file(path)
    if not expected or not hmac.compare_digest(actual, str(expected)):
        raise ModelError(f"model {version}: artefact sha256 {actual[:12]}… does not match the "
                         f"manifest ({str(expected)[:12]}…); refusing to load it")
    if signing_key:
        signature = manifest.get("signature", {}).get("value")
        if not signature:
            raise ModelError(f"model {version}: manifest is not signed and "
                             "TRIAGE_MODEL_SIGNING_KEY is set; refusing to load it")
        if not hmac.compare_digest(sign(manifest, signing_key), str(signature)):
            raise ModelError(f"model {version}: manifest signature is not valid for the "
                             "configured TRIAGE_MODEL_SIGNING_KEY; refusing to load it")
    return manifest


def load_verified(models_dir: Path, version: str, signing_key: str | None) -> Artefact:
    """Verify, then load, one version."""
    manifest = verify(models_dir, version, signing_key)
    return Artefact(manifest=manifest, pipeline=joblib.load(models_dir / version / ARTEFACT))


def read_registry(models_dir: Path) -> dict[str, Any]:
    """``{"promoted": VERSION | None, "history": [...]}``."""
    path = models_dir / REGISTRY
    if not path.exists():
        return {"promoted": None, "history": []}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def versions(models_dir: Path) -> list[dict[str, Any]]:
    """Manifests of every version on disk, oldest first."""
    found = []
    for folder in sorted(models_dir.glob("*/" + MANIFEST)):
        try:
            found.append(json.loads(folder.read_text()))
        except json.JSONDecodeError:
            continue
    return sorted(found, key=lambda m: str(m.get("created_at", "")))


def promoted(models_dir: Path) -> str:
    """The promoted version; :class:`ModelError` when there is none."""
    version = read_registry(models_dir).get("promoted")
    if not version:
        raise ModelError(f"no promoted model in {models_dir}: run `triage train` then "
                         "`triage models promote VERSION`")
    return str(version)


#: ``rescore(current_version, candidate_manifest)``: the current model's macro-F1 on the
#: candidate's test split, or None when it cannot be measured there.
Rescore = Callable[[str, Mapping[str, Any]], float | None]


def promotion_refusal(candidate: Mapping[str, Any], current: Mapping[str, Any] | None,
                      current_f1: float | None = None) -> str | None:
    """Why ``candidate`` may not be promoted over ``current``, or None when it may.

    ``current_f1`` is the current model's macro-F1 on the candidate's test split when it was
    measured there; otherwise the current model's own recorded figure is compared.
    """
    test = candidate.get("metrics", {}).get("test", {})
    recall = test.get("urgent_recall")
    if recall is None or recall < MIN_URGENT_RECALL:
        return (f"urgent recall on the test split is {recall}; promotion needs at least "
                f"{MIN_URGENT_RECALL}")
    if current is not None:
        where = "on the candidate's test split"
        if current_f1 is None:
            current_f1 = current.get("metrics", {}).get("test", {}).get("macro_f1", 0.0)
            where = "as recorded on its own test split"
        if test.get("macro_f1", 0.0) < current_f1:
            return (f"macro-F1 {test.get('macro_f1'):.4f} is below the current model "
                    f"{current['version']}'s {current_f1:.4f} {where}")
    return None


def promote(models_dir: Path, version: str, signing_key: str | None,
            rescore: Rescore | None = None) -> dict[str, Any]:
    """Make ``version`` the default everywhere, if it passes its checks and the gates.

    With ``rescore``, a current model trained on other data is measured again on the
    candidate's test split, so the two macro-F1 figures compare like with like.
    """
    candidate = verify(models_dir, version, signing_key)
    registry = read_registry(models_dir)
    current_version = registry.get("promoted")
    if current_version == version:
        raise ModelError(f"{version} is already the promoted model")
    current = read_manifest(models_dir, current_version) if current_version else None
    current_f1 = None
    if current is not None and rescore is not None and _data_sha(current) != _data_sha(
            candidate):
        current_f1 = rescore(str(current_version), candidate)
    refusal = promotion_refusal(candidate, current, current_f1)
    if refusal:
        raise ModelError(f"promotion of {version} refused: {refusal}")
    history = list(registry.get("history", []))
    if current_version:
        history.append(current_version)
    registry = {"promoted": version, "history": history}
    _write_json(models_dir / REGISTRY, registry)
    return registry


def _data_sha(manifest: Mapping[str, Any]) -> str | None:
    sha = manifest.get("training_data", {}).get("sha256")
    return str(sha) if sha else None


def rollback(models_dir: Path, signing_key: str | None) -> dict[str, Any]:
    """Return to the previously promoted version (which must still verify)."""
    registry = read_registry(models_dir)
    history = list(registry.get("history", []))
    if not history:
        raise ModelError("nothing to roll back to: no earlier promoted model")
    previous = history.pop()
    verify(models_dir, previous, signing_key)
    registry = {"promoted": previous, "history": history}
    _write_json(models_dir / REGISTRY, registry)
    return registry
