"""The safety net: admin-editable signals of a threat to life or a crime in progress.

Rules live in a TOML file (``triage/rules/safety.toml`` by default); :func:`load_rules` compiles
them once and :func:`scan` is a pure function of the text and the rules.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

ACTIONS = ("urgent", "review")
_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")  # inner apostrophes only: 'knife' is knife


@dataclass(frozen=True, slots=True)
class Signal:
    """One compiled signal: fires when ``pattern`` matches and no ``unless`` does."""

    name: str
    action: str
    trigger: frozenset[str]
    pattern: re.Pattern[str]
    unless: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """All compiled rules: figures of speech to blank out, then signals to look for."""

    figures: re.Pattern[str] | None
    signals: tuple[Signal, ...]
    source: str
    #: trigger word (ASCII bytes; the part before an apostrophe) -> indices of its signals
    index: Mapping[bytes, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """A signal that fired on a message."""

    name: str
    action: str


class RulesError(ValueError):
    """The safety rules file is invalid; the message says where."""


def default_path() -> Path:
    """The rules file shipped with the package."""
    return Path(str(resources.files("triage") / "rules" / "safety.toml"))


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise RulesError(f"{where}: bad regular expression: {exc}") from None


def _trigger_words(words: object, where: str) -> frozenset[str]:
    if not isinstance(words, list) or not words or not all(
            isinstance(w, str) and _WORDS.fullmatch(w) for w in words):
        raise RulesError(f"{where}: trigger must be a list of single lower-case words")
    return frozenset(words)


def words_of(text: str) -> frozenset[str]:
    """The lower-case words of a text, as triggers are matched."""
    return frozenset(_WORDS.findall(text.lower()))


def parse_rules(text: str, source: str = "<string>") -> SafetyRules:
    """Compile rules from TOML text; raise :class:`RulesError` naming the bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: {exc}") from None
    vocab = {str(k): str(v) for k, v in data.get("vocab", {}).items()}

    def expand(pattern: str) -> str:
        for key, value in vocab.items():
            pattern = pattern.replace("${" + key + "}", value)
        return pattern

    figures = [f"(?:{expand(f['pattern'])})" for f in data.get("figure_of_speech", [])]
    signals = []
    for i, entry in enumerate(data.get("signal", [])):
        where = f"{source}: signal #{i + 1} ({entry.get('name', '?')})"
        if not entry.get("name") or not entry.get("pattern") or not entry.get("trigger"):
            raise RulesError(f"{where}: needs a name, a trigger and a pattern")
        if entry.get("action") not in ACTIONS:
            raise RulesError(f"{where}: action must be one of {ACTIONS}")
        signals.append(Signal(
            name=str(entry["name"]),
            action=str(entry["action"]),
            trigger=_trigger_words(entry["trigger"], where),
            pattern=_compile(expand(entry["pattern"]), where),
            unless=tuple(_compile(expand(u), where) for u in entry.get("unless", [])),
        ))
    return SafetyRules(
        figures=_compile("|".join(figures), f"{source}: figure_of_speech") if figures else None,
        signals=tuple(signals),
        source=source,
        index=_index(signals),
    )


def _index(signals: list[Signal]) -> dict[bytes, tuple[int, ...]]:
    found: dict[bytes, list[int]] = {}
    for i, signal in enumerate(signals):
        for word in signal.trigger:
            # a word with an apostrophe ("don't") is found by its first part ("don")
            key = word.split("'")[0].encode("ascii")
            if i not in found.setdefault(key, []):
                found[key].append(i)
    return {word: tuple(ids) for word, ids in found.items()}


#: bytes.translate table: every byte but a-z and 0-9 becomes a space.
_SEPARATE = bytes(b if 97 <= b <= 122 or 48 <= b <= 57 else 32 for b in range(256))


def _tokens(lowered: str) -> list[bytes]:
    """Every maximal run of a-z and 0-9 in a lower-cased text, in C: non-ASCII characters
    become '?' and then, like apostrophes, separators. Each word of :func:`words_of` is one of
    these runs or, with an inner apostrophe, made of them."""
    return lowered.encode("ascii", "replace").translate(_SEPARATE).split()


def load_rules(path: Path | None = None) -> SafetyRules:
    """Read and compile the rules file (the shipped one by default)."""
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read safety rules {path}: {exc.strerror}") from None
    return parse_rules(text, str(path))


def scan(text: str, rules: SafetyRules) -> tuple[Hit, ...]:
    """Signals that fire on ``text`` once figures of speech are blanked out."""
    text = text.lower()
    index = rules.index
    found = index.keys() & _tokens(text)  # trigger words present (or a superset of them)
    if not found:
        return ()
    candidates = sorted({i for word in found for i in index[word]})
    matched = [rules.signals[i] for i in candidates if rules.signals[i].pattern.search(text)]
    if matched and rules.figures is not None:
        text = rules.figures.sub(" ", text)
        matched = [s for s in matched if s.pattern.search(text)]
    return tuple(Hit(s.name, s.action) for s in matched
                 if not any(u.search(text) for u in s.unless))
