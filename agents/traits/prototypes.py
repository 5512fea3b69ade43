"""Behavioural traits scored by embedding similarity to prototype replies.

Build one :class:`PrototypeScorer` per process with ``await PrototypeScorer.create(embed)``
(one batched embedding call); then ``score(reply_vector)`` reuses the reply's embedding
that memory already computed, so a turn pays no extra model call."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from agents.traits.types import Embed, Vector

# trait -> (prototype replies, anti-prototype replies). Replies, not descriptions: the
# vectors compared against are replies, and MiniLM places "I am warm" far from warmth.
PROTOTYPES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = MappingProxyType(
    {
        "warm": (
            (
                "It's so lovely to hear from you, I'm really glad you're here.",
                "Take care of yourself, friend; I'm always happy to chat with you.",
                "What a kind thing to share, thank you, that truly made my day.",
                "Welcome back! I missed our talks, come sit and tell me everything.",
            ),
            ("State your request.", "I have no interest in your personal situation."),
        ),
        "formal": (
            (
                "I would be pleased to assist you with this matter; kindly find my response below.",
                "In accordance with your request, the relevant considerations are outlined herewith.",
                "It is my considered opinion that the proposal merits further examination.",
                "Please accept my sincere apologies for any inconvenience this may have caused.",
            ),
            ("lol yeah totally, no worries dude", "haha ok gonna check that real quick"),
        ),
        "humorous": (
            (
                "Why did the scarecrow win an award? Because he was outstanding in his field!",
                "I'd tell you a joke about construction, but I'm still working on it.",
                "My cooking is so bad even the smoke alarm cheers me on.",
                "I asked my dog what two minus two is. He said nothing.",
            ),
            (
                "This is a serious matter and I will address it seriously.",
                "Please follow the instructions exactly as written.",
            ),
        ),
        "curious": (
            (
                "Ooh, that's fascinating, what made you start thinking about it?",
                "I wonder how that works; can you tell me more about what you found?",
                "Interesting! Why do you think that happens?",
                "Tell me more, I've always wanted to understand how people learn to sail.",
            ),
            ("I don't need to know more about that.", "That topic doesn't interest me."),
        ),
        "assertive": (
            (
                "No. This is the right approach, and here is exactly what you should do.",
                "I'm certain about this: stop delaying and make the decision today.",
                "Let me be clear, that plan will fail, so we are doing it my way.",
                "I insist. Stand up for yourself and tell them no.",
            ),
            (
                "Um, I'm not sure, whatever you think is best is fine with me.",
                "Sorry, I don't really want to impose, it's up to you.",
            ),
        ),
        "empathetic": (
            (
                "That sounds really painful, and it makes sense that you feel this way.",
                "I'm so sorry you're going through this; your feelings are completely valid.",
                "I can hear how exhausted and worried you are, and I'm here with you.",
                "It must be so hard to lose someone you love.",
            ),
            (
                "Your feelings are irrelevant; just deal with it.",
                "Stop complaining, everybody has problems.",
            ),
        ),
        "playful": (
            (
                "Ooh, a challenge! Let's make it a game, first one to guess wins a virtual cookie!",
                "Tee-hee, you caught me, I was secretly rooting for the penguins all along!",
                "Plot twist! Let's pretend we're pirates hunting for the answer, arr!",
                "Boop! Tag, you're it, now you have to tell me a secret.",
            ),
            (
                "Please keep the discussion strictly professional.",
                "We will proceed with the next item on the agenda.",
            ),
        ),
        "sceptical": (
            (
                "I'm not convinced; what's the evidence for that claim?",
                "That sounds too good to be true, and I'd want to see the data before believing it.",
                "Correlation isn't causation, so I doubt that conclusion holds up.",
                "Who says so? I'd check the source before trusting it.",
            ),
            (
                "Absolutely, I believe every word of it without question!",
                "If they said so, it must be true.",
            ),
        ),
        "patient": (
            (
                "No rush at all, take your time; we can go through it again step by step.",
                "That's okay, let's try once more slowly, there's no hurry.",
                "It's fine to ask again, I'm happy to explain it as many times as you need.",
                "Mistakes are normal, we'll keep practising calmly until it feels easy.",
            ),
            (
                "I already told you this, hurry up.",
                "How many times do I have to explain it? Just get it already.",
            ),
        ),
        "enthusiastic": (
            (
                "Wow, this is amazing! I absolutely love it, let's do it!",
                "Yes!! That's fantastic news, I'm so excited for you!",
                "This is brilliant, I can't wait to get started on it!",
                "Oh, I adore this kind of question, what a treat!",
            ),
            ("Fine, I suppose. It doesn't matter much either way.", "Meh. Whatever."),
        ),
        "analytical": (
            (
                "Let's break this down: isolate the variables, then compare each case systematically.",
                "The data shows three factors; weighing their relative effects, the second dominates.",
                "Logically, if A implies B and B is false, then A must be false as well.",
                "There are two competing explanations, and each predicts a different measurable outcome.",
            ),
            (
                "I just go with my gut, no need to think it through.",
                "Who cares about the details, it just feels right.",
            ),
        ),
        "encouraging": (
            (
                "You've got this! Every step you take is real progress, keep going.",
                "I believe in you; you've already come so far, don't give up now.",
                "Great effort, you're improving so quickly, keep it up!",
                "Your first try was a brave start, and the next one will be even better.",
            ),
            (
                "You'll probably fail, so why even bother trying?",
                "That's not good enough and it never will be.",
            ),
        ),
        "blunt": (
            (
                "That's wrong. Fix it.",
                "No. Your idea won't work.",
                "Frankly, this is bad and you wasted your time.",
                "Stop. You're doing it wrong.",
            ),
            (
                "It might perhaps be worth gently considering whether a small adjustment could help.",
                "That's a lovely start; maybe, if you'd like, we could look at one tiny thing together.",
            ),
        ),
        "humble": (
            (
                "I could be wrong about this, and I'm still learning myself.",
                "Honestly, you probably know more about this than I do.",
                "I don't have all the answers, but I'll share what little I know.",
                "Thank you for correcting me, I made a mistake there.",
            ),
            (
                "I'm the best in the world at this, nobody knows it better than me.",
                "Obviously I'm right, I always am.",
            ),
        ),
        "poetic": (
            (
                "The evening light spills like honey over the quiet hills, and the wind hums of home.",
                "Memory is a river; we step into it and come out changed, carrying its silver.",
                "Beneath the pale moon the sea whispers old secrets to the sleeping shore.",
                "Hope is a small lantern we carry through the long winter of the heart.",
            ),
            (
                "The meeting is at 3 pm in room 204.",
                "Set the configuration flag to true and restart the service.",
            ),
        ),
        "didactic": (
            (
                "Let me explain the concept step by step, starting with the definition.",
                "Here's the key lesson: a noun names a thing, and a verb describes an action.",
                "Remember the rule first, then we'll apply it to an example together.",
                "Today's lesson has three parts: the idea, a worked example, and a short exercise.",
            ),
            (),
        ),
    }
)

# Plain replies without any trait: part of every trait's negatives, so shared topic and
# register cancel out.
NEUTRAL_REPLIES: tuple[str, ...] = (
    "Sure, here is the information you asked for.",
    "The train leaves at half past eight from platform two.",
    "Paris is the capital of France.",
    "You can install it with the package manager.",
    "That depends on which version you are using.",
    "The museum opens at ten in the morning.",
    "The function takes two arguments and returns their sum.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The invoice was sent to the billing address on file.",
    "Add the flour, then stir until the batter is smooth.",
    "The population of the city is about two million.",
    "I had pasta for dinner yesterday.",
    "The meeting has been moved to Thursday afternoon.",
    "Use the settings page to change your password.",
    "The novel was published in 1925.",
    "The query filters rows by date and sorts them by name.",
)

# persona trait names (normalised) -> the extractor names that measure them
_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "warm": ("warmth", "warm", "friendly", "friendliness", "kindness", "kind"),
        "formal": ("formal", "formality"),
        "humorous": ("humorous", "humour", "humor", "funny", "wit", "witty", "wry_humour"),
        "curious": ("curious", "curiosity", "inquisitive", "inquisitiveness", "questioning"),
        "assertive": ("assertive", "assertiveness"),
        "empathetic": (
            "empathetic",
            "empathy",
            "empathic",
            "sympathy",
            "compassion",
            "compassionate",
        ),
        "playful": ("playful", "playfulness"),
        "sceptical": ("sceptical", "skeptical", "scepticism", "skepticism"),
        "patient": ("patient", "patience"),
        "enthusiastic": ("enthusiastic", "enthusiasm"),
        "analytical": ("analytical", "analytic", "rigour", "rigor", "systematic"),
        "encouraging": ("encouraging", "encouragement", "supportive", "supportiveness"),
        "blunt": ("blunt", "bluntness", "directness", "direct", "candour", "candor", "frankness"),
        "humble": ("humble", "humility", "modesty", "modest"),
        "poetic": ("poetic", "lyrical", "lyricism"),
        "didactic": ("didactic", "instructive", "pedagogical"),
        "verbosity": ("verbosity", "verbose", "talkative", "talkativeness"),
        "hedging": ("hedging", "tentative", "tentativeness"),
        "confidence": ("confidence", "confident", "certainty"),
        "lexical_richness": ("lexical_richness", "vocabulary", "vocabulary_richness"),
    }
)
ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: group for group, names in _GROUPS.items() for alias in names}
)
_NORMALISE = re.compile(r"[\s\-]+")

# OCEAN approximations from prototype scores (lower confidence: coarse proxies of
# questionnaire constructs). Tuples are (trait, inverted?).
OCEAN_PROXIES: Mapping[str, tuple[tuple[str, bool], ...]] = MappingProxyType(
    {
        "agreeableness": (
            ("warm", False),
            ("empathetic", False),
            ("encouraging", False),
            ("blunt", True),
        ),
        "extraversion": (("enthusiastic", False), ("playful", False), ("assertive", False)),
        "openness": (("curious", False), ("poetic", False), ("analytical", False)),
    }
)


def canonical(name: str) -> str:
    """The group a trait name belongs to (``Humour`` and ``wit`` -> ``humorous``;
    ``formality`` from stylometry and ``formal`` from embeddings -> ``formal``). Unknown
    names come back normalised (lower case, ``_`` for spaces and hyphens)."""
    key = _NORMALISE.sub("_", name.strip().lower())
    return ALIASES.get(key, key)


def ocean(scores: Mapping[str, float]) -> dict[str, float]:
    """Agreeableness, extraversion and openness approximated as means of prototype
    scores (``1 - blunt`` counts toward agreeableness). Treat as low confidence."""
    out: dict[str, float] = {}
    for name, parts in OCEAN_PROXIES.items():
        values = [1.0 - scores[t] if inv else scores[t] for t, inv in parts if t in scores]
        if values:
            out[name] = sum(values) / len(values)
    return out


def _sigmoid(x: Vector) -> Vector:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0))), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class PrototypeScorer:
    """Scores a reply embedding against each trait's prototypes.

    For trait ``t`` the raw score is ``mean cos(v, positives) - mean cos(v, negatives)``
    where the negatives are ``t``'s anti-prototypes plus the neutral replies. With
    normalised vectors that is one dot product with ``d_t = mean(pos) - mean(neg)``, so
    all traits cost one small matrix-vector product. The neutral replies (facts,
    instructions, code talk) cancel topic: a dry technical reply is close to them and so
    scores low on every trait, instead of high on whichever prototype shares its topic.

    Calibration: each trait's raw score is z-scored against its distribution over the
    *other* traits' prototypes and anti-prototypes (a fixed, varied set of clearly styled
    replies), then squashed: ``score = sigmoid(gain * z)``. 0.5 means "as much of t as a
    reply styled for some other trait"; plain factual replies land well below it. This
    makes traits comparable although MiniLM's cosine ranges differ per trait, and one
    reply's scores do not depend on anything else in the turn. Deterministic per model."""

    traits: tuple[str, ...]
    directions: Vector
    centre: Vector
    spread: Vector
    gain: float = 1.5

    @classmethod
    async def create(
        cls,
        embed: Embed,
        prototypes: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = PROTOTYPES,
        *,
        neutral: tuple[str, ...] = NEUTRAL_REPLIES,
        gain: float = 1.5,
    ) -> PrototypeScorer:
        """Embed every prototype once (one batched call) and calibrate."""
        traits = tuple(prototypes)
        if not traits or not neutral:
            raise ValueError("a prototype scorer needs traits and neutral replies")
        texts: list[str] = []
        owner: list[int] = []
        for i, trait in enumerate(traits):
            pos, neg = prototypes[trait]
            if not pos:
                raise ValueError(f"trait '{trait}' has no prototypes")
            texts += [*pos, *neg]
            owner += [i] * (len(pos) + len(neg))
        texts += neutral
        vectors = _normalise(np.asarray(await embed(texts), dtype=np.float32))
        if vectors.shape[0] != len(texts):
            raise ValueError(f"embed returned {vectors.shape[0]} rows for {len(texts)} texts")
        neutral_vectors = vectors[len(owner) :]
        directions = np.empty((len(traits), vectors.shape[1]), dtype=np.float32)
        start = 0
        for i, trait in enumerate(traits):
            pos, neg = prototypes[trait]
            block = vectors[start : start + len(pos) + len(neg)]
            negatives = np.concatenate([block[len(pos) :], neutral_vectors])
            directions[i] = block[: len(pos)].mean(axis=0) - negatives.mean(axis=0)
            start += len(pos) + len(neg)
        calibration = vectors[: len(owner)]
        raw = calibration @ directions.T
        others = np.asarray(owner)[:, None] != np.arange(len(traits))[None, :]
        if not others.any(axis=0).all():
            raise ValueError("calibration needs at least two traits")
        centre = np.array([raw[others[:, t], t].mean() for t in range(len(traits))], np.float32)
        spread = np.array([raw[others[:, t], t].std() for t in range(len(traits))], np.float32)
        spread = np.maximum(spread, np.float32(1e-3))
        for array in (directions, centre, spread):
            array.setflags(write=False)  # the scorer is shared between turns
        return cls(traits, directions, centre, spread, gain)

    def score(self, reply_vector: Vector) -> dict[str, float]:
        """Trait scores in 0..1 for one reply embedding (any scale; re-normalised here).
        A zero or non-finite vector scores 0.5 everywhere; a wrong dimension raises
        ValueError."""
        v = np.asarray(reply_vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(v))
        if v.shape[0] != self.directions.shape[1]:
            raise ValueError(
                f"reply vector has {v.shape[0]} dimensions, scorer expects "
                f"{self.directions.shape[1]}"
            )
        if not np.isfinite(norm) or norm < 1e-8:
            return dict.fromkeys(self.traits, 0.5)
        z = (self.directions @ (v / norm) - self.centre) / self.spread
        return dict(zip(self.traits, _sigmoid(self.gain * z).tolist(), strict=True))


def _normalise(m: Vector) -> Vector:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.asarray(m / np.maximum(norms, 1e-12), dtype=np.float32)
