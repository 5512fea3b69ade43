"""Surface style of a reply: sentence shape, questions, hedges, pronouns, vocabulary.

Pure and cheap (regexes over one reply); safe on empty text, emoji, code and non-English
text, where the English word lists simply stop applying and the values stay neutral."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# A sentence ends at terminal punctuation followed by space (so "3.14" and "e.g." mostly
# survive), right after CJK terminal punctuation, or at a line break (lists, bullets).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])|\n+")
_TRAILING = re.compile(r"[\s\"'”’)\]*_.…\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]+$")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _phrases(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(p.split()) for p in text.split("|"))


_HEDGE_WORDS = _words(
    "perhaps maybe might possibly probably somewhat arguably apparently presumably "
    "likely unlikely seemingly conceivably roughly suppose guess"
)
_HEDGE_PHRASES = _phrases(
    "i think|i believe|i suspect|i feel|i guess|it seems|it appears|sort of|kind of|"
    "not sure|could be|may be|in a way|to some extent|more or less|if i'm not mistaken|"
    "as far as i know"
)
_PHRASES_BY_FIRST: dict[str, tuple[tuple[str, ...], ...]] = {
    first: tuple(p for p in _HEDGE_PHRASES if p[0] == first) for first, *_ in _HEDGE_PHRASES
}
_FIRST_PERSON = _words("i me my mine myself we us our ours ourselves")
_SECOND_PERSON = _words("you your yours yourself yourselves")
_CONTRACTION_TAILS = _words("t re ve ll d m")
_S_CONTRACTIONS = _words("it that there here what who where how he she let")
# Common English function words: their share tells whether the word lists apply.
_ENGLISH = _words(
    "the a an and or but of to in on at for with is are was were be been it this "
    "that i you he she we they not no do does did have has had as by from so if "
    "what which there can will would could should my your our me"
)
MATTR_WINDOW = 50
VERBOSITY_HALF = 80.0
ENGLISH_MIN_SHARE = 0.12


@dataclass(frozen=True, slots=True)
class Stylometry:
    """Style measures of one text (code blocks, inline code and URLs removed first).

    Rates are per word; ratios are per sentence. ``lexical_diversity`` is the type/token
    ratio, or the moving-average TTR over 50-word windows once the text is longer than
    that, so long replies are not penalised for their length. ``english_share`` is the
    share of words that are common English function words: the hedge and pronoun lists
    only mean something when it is high enough (``english_like``)."""

    word_count: int
    sentence_count: int
    mean_sentence_length: float
    stdev_sentence_length: float
    question_ratio: float
    exclamation_ratio: float
    lexical_diversity: float
    hedging_rate: float
    first_person_rate: float
    second_person_rate: float
    contraction_rate: float
    emoji_rate: float
    english_share: float
    code_blocks: int
    verbosity: float

    @property
    def english_like(self) -> bool:
        return self.word_count >= 3 and self.english_share >= ENGLISH_MIN_SHARE


def _mattr(tokens: list[str], window: int = MATTR_WINDOW) -> float:
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts: dict[str, int] = {}
    for tok in tokens[:window]:
        counts[tok] = counts.get(tok, 0) + 1
    total = len(counts)
    for i in range(window, len(tokens)):
        out, inc = tokens[i - window], tokens[i]
        counts[out] -= 1
        if counts[out] == 0:
            del counts[out]
        counts[inc] = counts.get(inc, 0) + 1
        total += len(counts)
    return total / ((len(tokens) - window + 1) * window)


def _hedges(tokens: list[str]) -> int:
    found = 0
    for i, token in enumerate(tokens):
        if token in _HEDGE_WORDS:
            found += 1
        for phrase in _PHRASES_BY_FIRST.get(token, ()):
            if tuple(tokens[i : i + len(phrase)]) == phrase:
                found += 1
    return found


def _is_contraction(token: str) -> bool:
    head, _, tail = token.partition("'")
    if not tail:
        return False
    return tail in _CONTRACTION_TAILS or (tail == "s" and head in _S_CONTRACTIONS)


def verbosity_of(word_count: int) -> float:
    """Saturating 0..1 length measure: ``w / (w + 80)`` (80 words -> 0.5, 320 -> 0.8)."""
    return word_count / (word_count + VERBOSITY_HALF) if word_count > 0 else 0.0


def prose_of(text: str) -> str:
    """``text`` without code blocks, inline code and URLs: what style is measured on."""
    return _URL.sub(" ", _INLINE_CODE.sub(" ", _CODE_BLOCK.sub("\n", text)))


def tokens_of(prose: str) -> list[str]:
    """The words of ``prose``, lower-cased, curly apostrophes made straight."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(prose)]


def sentences_of(prose: str) -> list[str]:
    """The sentences of ``prose`` (ones with at least one word), by the same rule the
    reply measures use."""
    return [s for s in (p.strip() for p in _SENTENCE_BREAK.split(prose)) if _WORD.search(s)]


def sentence_end(sentence: str) -> str:
    """The sentence without trailing quotes, brackets, emoji and ellipses."""
    return _TRAILING.sub("", sentence)


def hedge_count(tokens: list[str]) -> int:
    return _hedges(tokens)


def person_counts(tokens: list[str]) -> tuple[int, int]:
    """First- and second-person words among ``tokens``."""
    heads = [t.partition("'")[0] for t in tokens]
    return sum(h in _FIRST_PERSON for h in heads), sum(h in _SECOND_PERSON for h in heads)


def stylometry(text: str) -> Stylometry:
    """Measure the surface style of one reply. Never raises on any ``str``."""
    code_blocks = len(_CODE_BLOCK.findall(text))
    prose = prose_of(text)
    tokens = tokens_of(prose)
    words = len(tokens)
    sentences = sentences_of(prose)
    lengths = [len(_WORD.findall(s)) for s in sentences]
    n_sent = len(sentences)
    ends = [_TRAILING.sub("", s) for s in sentences]
    heads = [t.partition("'")[0] for t in tokens]
    per_word = 1.0 / words if words else 0.0
    return Stylometry(
        word_count=words,
        sentence_count=n_sent,
        mean_sentence_length=statistics.fmean(lengths) if lengths else 0.0,
        stdev_sentence_length=statistics.pstdev(lengths) if len(lengths) > 1 else 0.0,
        question_ratio=sum(e.endswith(("?", "？")) for e in ends) / n_sent if n_sent else 0.0,
        exclamation_ratio=sum(e.endswith(("!", "！")) for e in ends) / n_sent if n_sent else 0.0,
        lexical_diversity=_mattr(tokens),
        hedging_rate=_hedges(tokens) * per_word,
        first_person_rate=sum(h in _FIRST_PERSON for h in heads) * per_word,
        second_person_rate=sum(h in _SECOND_PERSON for h in heads) * per_word,
        contraction_rate=sum(_is_contraction(t) for t in tokens if "'" in t) * per_word,
        emoji_rate=len(_EMOJI.findall(prose)) / max(words, 1),
        english_share=sum(h in _ENGLISH for h in heads) * per_word,
        code_blocks=code_blocks,
        verbosity=verbosity_of(words),
    )


def _clamp(x: float) -> float:
    return max(0.0, min(x, 1.0))


def _saturate(x: float, k: float) -> float:
    return 1.0 - math.exp(-k * max(x, 0.0))


NEUTRAL = 0.5
STYLE_TRAITS: tuple[str, ...] = (
    "verbosity",
    "inquisitiveness",
    "enthusiasm",
    "hedging",
    "confidence",
    "formality",
    "lexical_richness",
)


def style_traits(s: Stylometry) -> dict[str, float]:
    """Observed trait values in 0..1 from style measures.

    - ``verbosity``: ``w / (w + 80)`` of the word count.
    - ``inquisitiveness``: ``1 - exp(-3 * question_ratio)`` (one question in four
      sentences -> 0.53, every sentence a question -> 0.95).
    - ``enthusiasm``: ``1 - exp(-3 * exclamation_ratio)``.
    - ``hedging``: ``1 - exp(-30 * hedges per word)`` (one hedge per 100 words -> 0.26,
      one per 20 -> 0.78); ``confidence`` is ``1 - hedging``.
    - ``formality``: weighted mean of long sentences (0.35; 8 words -> 0, 25 -> 1), few
      contractions (0.25; 5 % of words -> 0), few first-person words (0.15; 8 % -> 0), few
      exclamations (0.15) and no emoji (0.10; 2 % of words -> 0).
    - ``lexical_richness``: type/token ratio (MATTR for long texts) rescaled from
      0.55..0.95 to 0..1. Short replies score high; callers lower their confidence.

    Empty text gives 0.5 everywhere but ``verbosity`` (0). Non-English text keeps 0.5 for
    the word-list traits (``hedging``, ``confidence``) and drops the word-list parts of
    ``formality``."""
    if s.word_count == 0:
        return {name: (0.0 if name == "verbosity" else NEUTRAL) for name in STYLE_TRAITS}
    long_sentences = _clamp((s.mean_sentence_length - 8.0) / 17.0)
    calm = 1.0 - s.exclamation_ratio
    no_emoji = 1.0 - _clamp(s.emoji_rate / 0.02)
    if s.english_like:
        hedging = _saturate(s.hedging_rate, 30.0)
        formality = (
            0.35 * long_sentences
            + 0.25 * (1.0 - _clamp(s.contraction_rate / 0.05))
            + 0.15 * (1.0 - _clamp(s.first_person_rate / 0.08))
            + 0.15 * calm
            + 0.10 * no_emoji
        )
    else:
        hedging = NEUTRAL
        formality = (0.35 * long_sentences + 0.15 * calm + 0.10 * no_emoji) / 0.6
    return {
        "verbosity": s.verbosity,
        "inquisitiveness": _saturate(s.question_ratio, 3.0),
        "enthusiasm": _saturate(s.exclamation_ratio, 3.0),
        "hedging": hedging,
        "confidence": 1.0 - hedging,
        "formality": _clamp(formality),
        "lexical_richness": _clamp((s.lexical_diversity - 0.55) / 0.40),
    }
