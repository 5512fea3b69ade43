"""Guards on a streamed reply: a persona never writes another speaker's line, never
loops, and a reply that had to be cut ends at a sentence boundary and says it was cut.

:class:`ReplyGuard` reads the model's text as it streams. It holds back the start of a
line only until that line is known not to be a speaker label, so the first token is not
delayed by more than a word. It ends the reply when

- a line starts with another participant's (or the user's) label: ``Name:``,
  ``First:``, ``**Name**:`` or ``@slug`` (cut ``"speaker"``);
- the reply starts repeating itself: a line, a sentence of five or more words, or a run
  of eight words that it already said (cut ``"repetition"``);

and drops the persona's own label where a line starts with it (``Socratic Tutor:``). A
reply the model ended at its token limit is cut ``"length"``. A cut reply is trimmed to
its last sentence boundary (kept whole when it has none)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Cut",
    "GuardedReply",
    "ReplyGuard",
    "Speakers",
    "UserFacts",
    "copies_another",
    "ends_mid_sentence",
    "second_person",
    "trim_to_sentence",
]

Cut = Literal["length", "repetition", "speaker", "stopped"]
CUTS: tuple[str, ...] = ("length", "repetition", "speaker", "stopped")

_NGRAM = 8
_SAID = re.compile(r"(?:said|says|wrote)\s*:")
_COPY_WORDS = 12  # a room reply's first words held back to compare with the others'
_MIN_SENTENCE_WORDS = 5
_MIN_LINE_CHARS = 8
# markup a model puts before a label: quotes, bold, list marks, headings, brackets
_LEAD = re.compile(r"[\s>*_\"'“‘#\[(-]*")
_CLOSE = "*_\"'”’])"
_WORD = re.compile(r"[\w']+")
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]*_]*(?=\s|$)")
_LIST_NUMBER = re.compile(r"(?:^|\n)[ \t]*\d+$")
_ENDINGS = frozenset(".!?…\"'”’)]*_")


def _label_forms(names: Iterable[str]) -> tuple[str, ...]:
    """Lowercased labels for names: the full name and its first word."""
    forms: set[str] = set()
    for name in names:
        clean = " ".join(name.split()).lower()
        if clean:
            forms.add(clean)
            forms.add(clean.split()[0])
    return tuple(sorted(forms, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class Speakers:
    """Who the persona is, and whose lines it must not write.

    ``own``: the persona's name (its label is dropped); ``others``: the other
    participants' and the user's names; ``handles``: their ``@`` handles (slugs)."""

    own: tuple[str, ...]
    others: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()

    @classmethod
    def of(cls, own: str, others: Iterable[str] = (), handles: Iterable[str] = ()) -> Speakers:
        # a small model also labels itself and the user generically
        return cls(
            own=_label_forms([own, "assistant"]),
            others=tuple(f for f in _label_forms([*others, "user"]) if f not in {"assistant"}),
            handles=tuple(sorted({h.lower().lstrip("@") for h in handles if h.strip()})),
        )


@dataclass(frozen=True, slots=True)
class GuardedReply:
    """The reply to store; ``tail``: what of it was not shown yet (to stream last)."""

    text: str
    cut: Cut | None
    tail: str = ""
    claimed: bool = False
    """The reply was ended before a sentence that said the user's fact as the persona's
    own (``UserFacts``): what is left is what came before it."""
    claim: str = ""
    """The sentence that claimed the user's fact (when ``claimed``)."""
    copied: bool = False
    """The reply shares more than half its word 5-grams with another persona's reply of
    the same turn (nothing of it was shown when it was found within its first words)."""
    unanswered: bool = False
    """The user asked for a fact the persona knows (``agents.answers``) and the reply
    never named it: nothing of it was shown."""


def ends_mid_sentence(text: str) -> bool:
    """Whether ``text`` stops inside a sentence (no closing punctuation)."""
    tail = text.rstrip()
    return bool(tail) and tail[-1] not in _ENDINGS


def trim_to_sentence(text: str) -> str:
    """``text`` up to its last sentence boundary; all of it when it has none."""
    text = text.rstrip()
    end = 0
    for match in _BOUNDARY.finditer(text):
        # "2." at the start of a line numbers a list item: it ends nothing
        if match.group().startswith(".") and _LIST_NUMBER.search(text, 0, match.start()):
            continue
        end = match.end()
    return text[:end].rstrip() if end else text


class ReplyGuard:
    """Feed the model's text in; get back what may be shown now. See the module doc."""

    def __init__(
        self,
        speakers: Speakers,
        facts: UserFacts | None = None,
        replies: Iterable[str] = (),
        *,
        again: bool = True,
        answers: Callable[[str], bool] | None = None,
    ) -> None:
        """``replies``: the other personas' replies of the turn, which this one must not
        copy; ``again``: a reply copying one from its start may be asked for again (so
        it is stopped before anything is shown), else it is kept whole; ``answers``:
        whether a sentence names the fact the user asked for
        (``agents.answers.Expected.named_in``), which the reply must do before any of it
        is shown."""
        self._again = again
        self._answers = answers
        self._answered = answers is None
        self._speakers = speakers
        self._facts = facts
        self._claimed = False
        self._claim = ""
        self._replies = tuple(r for r in replies if r.strip())
        self._others_grams = frozenset(g for r in self._replies for g in _grams(r))
        self._copied = False
        self._raw = ""
        self._released = 0
        self._shown = ""
        self._stop_at: int | None = None
        self._cut: Cut | None = None
        self._clean = ""
        forms = "|".join(re.escape(f) for f in speakers.others)
        # a label after a sentence's end within a line: "... measure. Socratic: ..."
        self._inline = (
            re.compile(rf"(?<=[.!?…\"”])[ \t]+\**(?:{forms})[*_\"'”’]*[ \t]*:", re.IGNORECASE)
            if forms
            else None
        )

    @property
    def stopped(self) -> bool:
        """The reply must end here: stop reading the model."""
        return self._cut is not None or self._claimed or self._copied

    @property
    def raw(self) -> str:
        """The model's text as it came (for a log line on a reply that showed nothing)."""
        return self._raw

    @property
    def claimed(self) -> bool:
        """A sentence claimed the user's fact as the persona's own (see ``UserFacts``)."""
        return self._claimed

    def feed(self, delta: str) -> str:
        """Take the next piece of the model's text; return the text that is now safe to
        show (possibly empty). After ``stopped``, returns nothing more."""
        if self.stopped or not delta:
            return ""
        self._raw += delta
        clean, safe = self._scan()
        self._clean = clean
        if self._stop_at is not None:
            safe = min(safe, self._stop_at)
        if not self._answered:
            # nothing is shown until a finished sentence names the fact asked for
            self._answered = self._names(clean[:safe], final=False)
            if not self._answered:
                safe = 0
        out = clean[self._released : safe] if safe > self._released else ""
        self._released = max(self._released, safe)
        self._shown += out
        return out

    def finish(self, finish_reason: str | None = None) -> GuardedReply:
        """The reply to store, once the model stopped (or the guard stopped it).
        ``finish_reason`` ``"length"``: the model hit its token limit."""
        if not self.stopped:
            self._clean, _ = self._scan(final=True)
        if self._stop_at is not None:
            text = self._clean[: self._stop_at]
        else:
            text = self._clean
            if finish_reason == "length":
                self._cut = "length"
        text = text.strip()
        if self._cut is not None and ends_mid_sentence(text):
            text = trim_to_sentence(text)
        if not self._copied and copies_another(text, self._replies):
            self._copied = True
        if not self._answered:
            self._answered = self._names(text, final=True)
        shown = self._shown.lstrip()
        tail = text[len(shown) :] if text.startswith(shown) else ""
        return GuardedReply(
            text,
            self._cut,
            tail,
            self._claimed,
            self._claim,
            self._copied,
            unanswered=not self._answered,
        )

    # -- scanning ---------------------------------------------------------------------

    def _scan(self, *, final: bool = False) -> tuple[str, int]:
        """The text with own labels dropped, and how much of it is safe to show; sets
        the stop point when a guard fires."""
        out: list[str] = []
        length = 0
        safe = 0
        seen_lines: set[str] = set()
        lines = self._raw.split("\n")
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            verdict, body = self._label(line)
            if verdict == "undecided" and not final and last:
                return "".join(out), length  # wait for the rest of this line's start
            if verdict == "other":
                self._stop(length, "speaker")
                return "".join(out), length
            piece = body if last else body + "\n"
            key = " ".join(body.split()).lower()
            if not last and len(key) >= _MIN_LINE_CHARS:
                if key in seen_lines:
                    self._stop(length, "repetition")
                    return "".join(out), length
                seen_lines.add(key)
            out.append(piece)
            length += len(piece)
            safe = length
        text = "".join(out)
        inline = self._inline.search(text) if self._inline is not None else None
        repeat = _first_repeat(text)
        if inline is not None and (repeat is None or inline.start() < repeat):
            self._stop(inline.start(), "speaker")
        elif repeat is not None:
            self._stop(repeat, "repetition")
        if self._inline is not None and not final:
            safe = min(safe, _held_for_inline(text, safe))
        if self._facts is not None and not self.stopped:
            safe = self._check_claims(text, safe, final)
        if self._replies and not self.stopped:
            if not self._released and self._again:
                # another persona's reply said again: found within the first words,
                # before any is shown, so the reply can be asked for again
                if len(_WORD.findall(text)) < _COPY_WORDS and not final:
                    return text, 0
                if copies_another(text, self._replies):
                    self._copied = True
                    self._stop_at = 0
                    return text, 0
            run = _copied_run(text, self._others_grams)
            if run:  # after words of its own, a run of it copied: ended where it began
                self._stop(run, "repetition")
                return text, min(safe, run)
        return text, safe

    def _names(self, text: str, *, final: bool) -> bool:
        """Whether a sentence of ``text`` (a finished one, unless ``final``) names the
        fact the user asked for."""
        assert self._answers is not None
        ends = [m.end() for m in _BOUNDARY.finditer(text)]
        upto = len(text) if final else (ends[-1] if ends else 0)
        return any(self._answers(s) for s in _SENTENCES.split(text[:upto]))

    def _check_claims(self, text: str, safe: int, final: bool) -> int:
        """Stop before a sentence that claims the user's fact; hold back an unfinished
        sentence in the first person until it ends (it may yet claim one)."""
        assert self._facts is not None
        start = 0
        bounds = [m.end() for m in _BOUNDARY.finditer(text)]
        if final and (not bounds or bounds[-1] < len(text.rstrip())):
            bounds.append(len(text))
        for end in bounds:
            if self._facts.claim(text[start:end]) is not None:
                self._claimed = True
                self._claim = text[start:end].strip()
                at = start + len(text[start:end]) - len(text[start:end].lstrip())
                self._stop_at = at if self._stop_at is None else min(self._stop_at, at)
                return min(safe, at)
            start = end
        if not final and self._facts.holds(text[start:]):
            return min(safe, start)
        return safe

    def _stop(self, at: int, cut: Cut) -> None:
        if self._cut is None:
            self._cut = cut
            self._stop_at = at

    def _label(self, line: str) -> tuple[str, str]:
        """``("other", "")`` when the line starts another speaker's label, ``("own",
        rest)`` with the persona's own label dropped, ``("undecided", line)`` while the
        line's start could still become a label, else ``("plain", line)``."""
        lead = _LEAD.match(line)
        start = lead.end() if lead else 0
        head = line[start:].lower()
        s = self._speakers
        for handle in s.handles:
            tag = "@" + handle
            if head.startswith(tag) and (len(head) == len(tag) or not _is_word(head[len(tag)])):
                return "other", ""
            if tag.startswith(head) or head.startswith(tag):
                return "undecided", line
        undecided = False
        for forms, kind in ((s.others, "other"), (s.own, "own")):
            for form in forms:
                if head.startswith(form):
                    rest = head[len(form) :]
                    stripped = rest.lstrip(_CLOSE + " \t")
                    if kind == "other" and _SAID.match(stripped):
                        return "other", ""  # 'Albert Einstein said: "..."', quoted
                    if stripped.startswith(":"):
                        if kind == "other":
                            return "other", ""
                        cut = len(line) - len(stripped) + 1
                        return "own", line[cut:].lstrip()
                    if stripped == "" and (rest == "" or not _is_word(rest[0])):
                        undecided = True  # "Albert" or "**Albert**": a colon may follow
                elif form.startswith(head):
                    undecided = True
        return ("undecided" if undecided else "plain"), line


def _held_for_inline(text: str, safe: int) -> int:
    """Hold back the words after a sentence's end until an inline label is ruled out
    (at most the last few words)."""
    tail = text[:safe]
    at = max(tail.rfind(". "), tail.rfind("! "), tail.rfind("? "), tail.rfind('" '))
    if at == -1 or len(tail) - at > 40 or ":" in tail[at:]:
        return safe
    return at + 1


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_-"


def _first_repeat(text: str) -> int | None:
    """Where ``text`` starts saying again what it already said: the start of the second
    occurrence of a sentence of five or more words or of an eight-word run."""
    words = [(m.group().lower(), m.start()) for m in _WORD.finditer(text)]
    found: int | None = None
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - _NGRAM + 1):
        gram = tuple(w for w, _ in words[i : i + _NGRAM])
        if gram in seen and seen[gram] + _NGRAM <= i:
            found = words[i][1]
            break
        seen.setdefault(gram, i)
    sentences: set[str] = set()
    start = 0
    for match in _BOUNDARY.finditer(text):
        sentence = text[start : match.end()]
        key = " ".join(w.lower() for w in _WORD.findall(sentence))
        if len(key.split()) >= _MIN_SENTENCE_WORDS:
            if key in sentences:
                at = start + (len(sentence) - len(sentence.lstrip()))
                found = at if found is None else min(found, at)
                break
            sentences.add(key)
        start = match.end()
    return found


# -- the user's facts, not the persona's ---------------------------------------------------

_FIRST = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|our|ours|we)\b", re.IGNORECASE)
_SECOND = re.compile(r"\b(?:you|your|yours|you're|you've|yourself)\b", re.IGNORECASE)
_POSSESSION = re.compile(r"\b(?:my|our)\s+([a-z']+(?:\s+[a-z']+)?)", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?…])\s+|\n+")
_CLAIM_REACH = 5  # words from "I"/"my" to the told word that makes it the speaker's
# words that tell no fact apart: what a told line shares with any reply
_COMMON = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "our",
        "us",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "then",
        "than",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "very",
        "really",
        "just",
        "also",
        "too",
        "now",
        "new",
        "old",
        "little",
        "big",
        "good",
        "best",
        "favourite",
        "favorite",
        "called",
        "named",
        "name",
        "names",
        "call",
        "is's",
        "i'm",
        "i've",
        "i'll",
        "i'd",
        "love",
        "like",
        "likes",
        "live",
        "lives",
        "work",
        "works",
        "play",
        "plays",
        "keep",
        "keeps",
        "years",
        "year",
        "day",
        "days",
        "one",
        "two",
        "some",
        "many",
        "much",
        "more",
        "most",
        "about",
        "into",
        "over",
        "after",
        "before",
        "every",
        "each",
        # common verbs and times: a persona saying "I lost my way last night" claims nothing
        *[
            "lost",
            "lose",
            "moved",
            "move",
            "failed",
            "fail",
            "went",
            "going",
            "got",
            "get",
            "made",
            "make",
            "take",
            "took",
            "feel",
            "felt",
            "think",
            "thought",
            "want",
            "need",
            "know",
            "knew",
            "said",
            "say",
            "told",
            "tell",
            "start",
            "started",
            "remember",
            "today",
            "tonight",
            "morning",
            "night",
            "evening",
            "week",
            "month",
            "time",
            "thing",
            "things",
            "people",
        ],
    ]
)


def told_words(lines: Iterable[str]) -> frozenset[str]:
    """The words that tell the user's facts apart: names, numbers and the uncommon
    words of what the user told ("Miso", "1988", "cello")."""
    found: set[str] = set()
    for line in lines:
        for word in _WORD.findall(line.lower()):
            word = word.strip("'")
            if len(word) >= 3 and word not in _COMMON:
                found.add(word.removesuffix("'s"))
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What the user said about themselves that the persona must not say as its own:
    the distinctive words of what they told it (``words``) and what their question asks
    about ("my dog" in "What is my dog's name?": ``asked``)."""

    words: frozenset[str] = frozenset()
    asked: frozenset[str] = frozenset()

    @classmethod
    def of(cls, question: str, told: Iterable[str] = ()) -> UserFacts:
        asked: set[str] = set()
        for m in _POSSESSION.finditer(question):
            first = m.group(1).lower().split()[0].removesuffix("'s")
            if first not in _COMMON:
                asked.add(first)
        return cls(told_words(told), frozenset(asked))

    def claim(self, text: str) -> str | None:
        """The first sentence of ``text`` that presents the user's fact as the speaker's
        own: in the first person (and not the second) with one of the told words, or
        "my <what the user asked about>" ("My dog's name is Luna." to "What is my dog's
        name?"). None when there is none."""
        if not self.words and not self.asked:
            return None
        for sentence in _SENTENCES.split(text):
            if not _FIRST.search(sentence) or _SECOND.search(sentence):
                continue
            if self._owned(sentence):
                return sentence
            for m in _POSSESSION.finditer(sentence):
                if m.group(1).lower().split()[0].removesuffix("'s") in self.asked:
                    return sentence
        return None

    def _owned(self, sentence: str) -> bool:
        """Whether one of the told words follows a first-person word closely ("I am a
        nurse", "I call my beagle Pixel"), so the speaker says it of themselves; a told
        word elsewhere in a sentence that also says "my" ("Light is a wave, my friend")
        is not a claim."""
        words = [w.strip("'").removesuffix("'s") for w in _WORD.findall(sentence.lower())]
        last_first: int | None = None
        for i, w in enumerate(words):
            if _FIRST.fullmatch(w):
                last_first = i
            elif w in self.words and last_first is not None and i - last_first <= _CLAIM_REACH:
                return True
        return False

    def holds(self, sentence: str) -> bool:
        """Whether an unfinished sentence must be held back until it ends: it speaks in
        the first person, so it may yet claim one of the user's facts."""
        return bool(self.words or self.asked) and _FIRST.search(sentence) is not None


def _grams(text: str) -> set[tuple[str, ...]]:
    w = [x.lower() for x in _WORD.findall(text)]
    return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}


def shared_5grams(text: str, other: str) -> float:
    """The share of ``text``'s word 5-grams that ``other`` has too (0 when it has none)."""
    mine = _grams(text)
    return len(mine & _grams(other)) / len(mine) if mine else 0.0


_COPY_RUN = 3  # consecutive shared 5-grams: seven words said word for word


def _copied_run(text: str, others: frozenset[tuple[str, ...]]) -> int | None:
    """Where ``text`` starts saying seven or more words of another reply word for word
    (three consecutive 5-grams it shares), or None."""
    if not others:
        return None
    words = [(m.group().lower(), m.start()) for m in _WORD.finditer(text)]
    streak = 0
    for i in range(len(words) - 4):
        if tuple(w for w, _ in words[i : i + 5]) in others:
            streak += 1
            if streak == _COPY_RUN:
                return words[i - _COPY_RUN + 1][1]
        else:
            streak = 0
    return None


def copies_another(text: str, others: Iterable[str]) -> bool:
    """Whether ``text`` shares more than half its word 5-grams with one of ``others``
    (another persona's reply in the same turn)."""
    return any(shared_5grams(text, o) > 0.5 for o in others)


# what the speaker said of itself, said of the one it talks to ("My dog" -> "Your dog")
_YOU = {
    "i am": "you are",
    "i'm": "you're",
    "i was": "you were",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "we": "you",
    "our": "your",
    "ours": "yours",
    "us": "you",
}
_FIRST_PERSON = re.compile(
    r"\b(" + "|".join(re.escape(k) for k in sorted(_YOU, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def second_person(sentence: str) -> str:
    """``sentence`` with its first person turned into the second: a claimed fact said
    back to the user it belongs to ("My dog's name is Pixel." -> "Your dog's name is
    Pixel.")."""
    out = _FIRST_PERSON.sub(lambda m: _YOU[m.group().lower()], sentence.strip())
    return out[:1].upper() + out[1:]
