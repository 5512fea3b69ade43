"""Questions about the user that a known fact answers, and whether a reply answers them.

When the user asks about themselves ("What is my job?") and one of their current facts is
on what the question asks about (the fact's subject, "job"), a reply that does not say
the fact's distinctive words ("pilot" in "Ada works as a pilot.") has not answered,
whatever else it says. :func:`expected_answer` finds that fact; the reply guard holds a
reply back until it names it, the reply is asked for again with the fact pointed out,
and when no try names it the fact is said back to the user (:func:`said_back`).

What a question asks about is read from its words: the fact's subject words must all
be in it ("favourite food" is not answered by "favourite colour"), or, for the subjects
the local extractor names after a verb rather than a noun, one of the words such a
question is asked with ("job": "What do I do for a living?")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agents.facts_prompt import KnownFact, asks_about_past
from agents.guards import told_words
from memory.acts import is_question

_WORD = re.compile(r"[a-z0-9][a-z0-9']*")
_FIRST = frozenset({"i", "i'm", "i've", "me", "my", "mine", "we", "our"})
_PERSONS = _FIRST | {"you", "your", "you're", "you've", "yours"}
_REACH = 6  # words before the fact's word in which a person word makes it theirs
_ABOUT_ME = re.compile(r"\b(?:i|i'm|i've|me|my|mine|myself)\b", re.IGNORECASE)

# subjects named after what the fact says rather than a noun of it, and the words (as
# they are written) a question about them is asked with
_ASKED_WITH: dict[str, frozenset[str]] = {
    "job": frozenset({"job", "work", "living", "profession", "occupation", "career"}),
    "employer": frozenset({"work", "job", "company", "employer", "where"}),
    "home": frozenset(
        {"live", "lives", "city", "town", "home", "country", "move", "moved", "based", "where"}
    ),
    "origin": frozenset({"from", "come", "born", "grow", "grew", "hometown", "where"}),
    "partner": frozenset(
        {
            "partner",
            "date",
            "dating",
            "marry",
            "married",
            "engaged",
            "girlfriend",
            "boyfriend",
            "wife",
            "husband",
            "seeing",
            "single",
            "relationship",
        }
    ),
    "age": frozenset({"old", "age"}),
    "name": frozenset({"name", "call"}),
    "studies": frozenset({"study", "studying", "major", "degree"}),
    "vehicle": frozenset({"drive", "car", "ride", "vehicle"}),
    "likes": frozenset({"like", "love", "enjoy", "fan"}),
    "allergy": frozenset({"allergic", "allergy"}),
}
# words of a subject that do not say what it is about ("favourite food": "food")
_LOOSE = frozenset({"favourite", "favorite", "best", "new", "current", "old", "first"})
# of those, the ones that make it another subject: a question must say one of them too
# ("Which fruit do I like best?" asks for the favourite fruit)
_RANKING = frozenset({"favourite", "favorite", "best"})
# words of a fact that belong to how it is said, not to its value
_FRAME = frozenset(
    {
        "works",
        "work",
        "lives",
        "live",
        "called",
        "named",
        "name",
        "likes",
        "loves",
        "enjoys",
        "adores",
        "dislikes",
        "studies",
        "drives",
        "rides",
        "dating",
        "married",
        "engaged",
        "seeing",
        "broke",
        "allergic",
        "years",
        "old",
        "now",
        "still",
    }
)


def _stem(word: str) -> str:
    """A word's rough stem, enough to match "lives" and "live", "studies" and "study"."""
    word = word.strip("'").removesuffix("'s")
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + keep
            break
    return word.rstrip("e")


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower())}


@dataclass(frozen=True, slots=True)
class Expected:
    """The fact a question about the user asks for, and the words of it that a reply
    answering the question says (any one of them)."""

    fact: str
    words: frozenset[str]

    def named_in(self, sentence: str) -> bool:
        """Whether ``sentence`` says one of the fact's words of the user: not in a
        question asking it back ("Are you a pilot?"), nor as the speaker's own, with
        "I" or "my" the nearest person before it ("...I can tell you that my favourite
        season is autumn")."""
        if sentence.rstrip().endswith("?"):
            return False
        words = [w.strip("'").removesuffix("'s") for w in _WORD.findall(sentence.lower())]
        for i, word in enumerate(words):
            if word not in self.words:
                continue
            before = [w for w in words[max(0, i - _REACH) : i] if w in _PERSONS]
            if not before or before[-1] not in _FIRST:
                return True
        return False


def _match(subject: str, words: set[str], stems: set[str]) -> int:
    """How surely a question with these words (and their stems) asks about ``subject``:
    twice the subject's words when all of them are in it ("my dog's name", "dog"), else
    how many of the words such a question is asked with it has; 0: not about it."""
    head, _, _ = subject.partition(":")
    if _RANKING & set(_WORD.findall(head.lower())) and not _RANKING & words:
        return 0  # "favourite city" does not answer where the user lives
    own = {_stem(w) for w in _WORD.findall(head.lower()) if w not in _LOOSE}
    if own and own <= stems:
        return 2 * len(own)
    return len(_ASKED_WITH.get(head, frozenset()) & words)


def expected_answer(question: str, user_name: str, facts: Sequence[KnownFact]) -> Expected | None:
    """The current fact that answers ``question`` when it asks the user's own fact
    ("What is my dog's name?" and "Ada's dog is called Pixel."), else None. ``facts``
    come most relevant first; questions about the past are left alone (superseded
    facts answer those)."""
    if not is_question(question) or not _ABOUT_ME.search(question) or asks_about_past(question):
        return None
    words = set(_WORD.findall(question.lower()))
    asked = {_stem(w) for w in words}
    name = re.compile(rf"\b{re.escape(user_name)}(?:'s)?\b", re.IGNORECASE)
    best: tuple[int, Expected] | None = None
    for fact in facts:
        if fact.until is not None or not fact.subject:
            continue
        sure = _match(fact.subject, words, asked)
        if sure == 0 or (best is not None and sure <= best[0]):
            continue  # on a tie, the more relevant fact (earlier) stands
        value = {
            w
            for w in told_words([name.sub(" ", fact.text)])
            if w not in _FRAME and _stem(w) not in asked
        }
        if value:
            best = (sure, Expected(fact.text, frozenset(value)))
    return None if best is None else best[1]


_THIRD_TO_SECOND = {"is": "are", "was": "were", "has": "have", "does": "do"}


def said_back(fact: str, user_name: str) -> str:
    """The fact said to the user it is about ("Ada works as a pilot." -> "You said that
    you work as a pilot.")."""
    text = fact.strip().rstrip(".")
    possessive = re.match(rf"{re.escape(user_name)}'s\s+", text, re.IGNORECASE)
    subject = re.match(rf"{re.escape(user_name)}\s+(\w+)\b", text, re.IGNORECASE)
    if possessive:
        text = "your " + text[possessive.end() :]
    elif subject:
        verb = subject.group(1)
        low = verb.lower()
        if low in _THIRD_TO_SECOND:
            verb = _THIRD_TO_SECOND[low]
        elif low.endswith("ies") and len(low) > 4:
            verb = verb[:-3] + "y"
        elif low.endswith(("ches", "shes", "sses", "xes", "oes")):
            verb = verb[:-2]
        elif low.endswith("s") and not low.endswith("ss"):
            verb = verb[:-1]
        rest = re.sub(
            r"\band (is|was|has)\b",
            lambda m: "and " + _THIRD_TO_SECOND[m.group(1)],
            text[subject.end() :],
        )
        text = f"you {verb}" + rest
    else:
        return f"You said this: {text}."
    return f"You said that {text}."


__all__ = ["Expected", "expected_answer", "said_back"]
