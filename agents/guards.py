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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Cut",
    "GuardedReply",
    "ReplyGuard",
    "Speakers",
    "ends_mid_sentence",
    "trim_to_sentence",
]

Cut = Literal["length", "repetition", "speaker"]
CUTS: tuple[str, ...] = ("length", "repetition", "speaker")

_NGRAM = 8
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

    def __init__(self, speakers: Speakers) -> None:
        self._speakers = speakers
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
        return self._cut is not None

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
        shown = self._shown.lstrip()
        tail = text[len(shown) :] if text.startswith(shown) else ""
        return GuardedReply(text, self._cut, tail)

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
        return text, safe

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
