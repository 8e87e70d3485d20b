"""The safety net from tables: strong present-tense signals fire, figures of speech do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage import corpus
from triage.safety import RulesError, load_rules, parse_rules, scan, words_of

RULES = load_rules()

FIRES = [
    ("he's outside my door with a knife", "weapon_now"),
    ("theres a lad waving a machete outside the co-op right now", "weapon_now"),
    ("gunman on the Metrolink?? Piccadilly Gardens stop", "weapon_now"),
    ("someone is trying my back door handle right now", "break_in_now"),
    ("there's an intruder in my house, I'm upstairs", "break_in_now"),
    ("a man is being stabbed outside the chippy", "violence_now"),
    ("i've taken all my tablets", "self_harm_method"),
    ("i dont want to be alive tomorrow", "self_harm_intent"),
    ("I'm going to kill myself tonight", "self_harm_intent"),
    ("ive swallowed bleach. idk what to do", "self_harm_method"),
    ("my nan has dementia and she has wandered off from the care home", "missing_vulnerable_now"),
    ("my ex says he'll kill me if I leave", "threat_to_kill"),
    ("the driver of the white van is drunk, swerving all over the road on the A38",
     "drink_drive_now"),
    ("screaming coming from the flat upstairs, sounds like he's hurting her", "domestic_now"),
    ("I'm hiding in the bathroom, he's smashing the place up", "domestic_now"),
    ("fire in stairwell and the door's chained shut??", "trapped_in_fire"),
    ("my little sister got took", "abduction_now"),
    ("they dragged a woman into a van on Elm Road", "abduction_now"),
    ("please help me now he is here", "help_emergency"),
    ("Boy drowning in the canal by the lock, hurry", "emergency_now"),
    ("taken all my pills. sorry mum", "self_harm_method"),
    ("i took 40 sertraline an hour ago", "self_harm_method"),
    ("I have decided that I will not be here tomorrow. I have written letters",
     "self_harm_goodbye"),
    ("My dad's threatening to shoot himself. Shotgun.", "self_harm_intent"),
    ("my son's missing, 6yrs old", "missing_vulnerable_now"),
    ("Wee boy about 4 wandering on his own by the Clyde walkway", "missing_vulnerable_now"),
    ("Someone waving a samurai sword, Grainger St", "weapon_now"),
    ("bf's choking me, hiding in toilet", "domestic_now"),
    # each of these once slipped past the trigger words (see the corpus test below)
    ("i dont want to be here anymore", "self_harm_intent"),
    ("thinking about taking it all tonight", "self_harm_intent"),
    ("i'm on the multi storey and about to jump'", "self_harm_intent"),
    ("toddler wandering by the dual carriageway in a nappy", "missing_vulnerable_now"),
]

SILENT = [
    "this traffic is killing me",
    "I'd murder a curry right now",
    "my mum is going to kill me lol",
    "I'm dead 😂 that video",
    "this album is fire",
    "someone tried my door handle last night",
    "my car was broken into on Saturday, nothing taken",
    "is it legal to carry a pocket knife for fishing?",
    "what's the fee for a shotgun cert now?",
    "Another mass shooting in the States. Grateful for our gun laws here.",
    "I'll kill him when he gets home, he left the wet washing in AGAIN (joking)",
    "bombed my exam, might as well move to Peru",
    "got absolutely destroyed at FIFA by a 12 year old",
    "my son went missing last year and you took 6 hours to take it seriously",
    "Please share: missing teenager appeal from @NorthShiresPolice",
    "Thanks to the officers who found my dad with dementia yesterday, he's home safe",
    "My son's 17, can he go to the careers evening on his own?",
    "City ran riot at the Etihad, 6-0",
    "shots fired 🔥 with the roast of the sarge",
    "Euro final. Penalties. England. I can't. I'm hiding in the loo",
    "my nan's handbag is missing after the market, she's home now",
    "We're going to set the world on fire with our charity bake sale!",
]


@pytest.mark.parametrize(("text", "signal"), FIRES)
def test_signal_fires(text: str, signal: str) -> None:
    assert signal in {h.name for h in scan(text, RULES)}


@pytest.mark.parametrize("text", SILENT)
def test_figures_of_speech_and_past_events_stay_silent(text: str) -> None:
    assert scan(text, RULES) == ()


def test_case_is_ignored() -> None:
    assert scan("HE'S OUTSIDE MY DOOR WITH A KNIFE", RULES)


def test_every_match_in_the_corpus_contains_a_trigger_word(shipped_models: Path) -> None:
    """Triggers are only a fast path: a pattern match without one would be missed."""
    missed = [(e.id, s.name) for e in corpus.load(shipped_models / "corpus" / "corpus.jsonl")
              for s in RULES.signals
              if s.pattern.search(e.text.lower()) and not s.trigger & words_of(e.text)]
    assert missed == []


def test_every_signal_has_a_positive_example() -> None:
    assert {s.name for s in RULES.signals} <= {signal for _, signal in FIRES}


@pytest.mark.parametrize(("text", "error"), [
    ("[[signal]]\nname='x'\naction='urgent'\ntrigger=['a']\npattern='('\n", "bad regular"),
    ("[[signal]]\nname='x'\naction='panic'\ntrigger=['a']\npattern='a'\n", "action must be"),
    ("[[signal]]\nname='x'\naction='urgent'\npattern='a'\n", "needs a name, a trigger"),
    ("[[signal]]\nname='x'\naction='urgent'\ntrigger=['Two words']\npattern='a'\n",
     "single lower-case words"),
    ("[[signal\n", "rules.toml"),
])
def test_bad_rules_are_refused_with_the_place(text: str, error: str) -> None:
    with pytest.raises(RulesError, match=error):
        parse_rules(text, "rules.toml")
