"""What a stored line does: a user's ``statement`` or ``question``, a persona's ``reply``
(an ``answer`` when it replies to a question).

Cheap rules on the text, run when a turn's lines are stored (the memory's
``metadata["act"]``). Ranking uses it: a question is not evidence about the user, and a
persona's reply is what the persona said, not what is true about the user
(``memory.vector.scoring``). A user line that opens by contradicting ("No, my dog is
Pixel") is a ``correction``: the reply before it is marked ``contradicted``."""

from __future__ import annotations

import re
from typing import Literal

Act = Literal["statement", "question", "reply", "answer"]
"""``answer``: a persona's reply to a user's question (the turn sets it)."""

_WH = (
    "what|whats|what's|who|whom|whose|which|where|when|why|how|hows|how's|"
    "do|does|did|is|are|am|was|were|can|could|will|would|should|shall|may|might|"
    "have|has|had|isn't|aren't|don't|doesn't|didn't|won't|wouldn't|can't|couldn't"
)
_QUESTION_START = re.compile(
    rf"^\s*(?:(?:so|and|but|hey|ok|okay|well|then)[,\s]+)?(?:{_WH})\b", re.IGNORECASE
)
_ASK = re.compile(
    r"^\s*(?:(?:can|could|would) you |please )?(?:tell me|remind me|do you (?:know|remember))\b",
    re.IGNORECASE,
)
_CORRECTION = re.compile(
    r"^\s*(?:no\b|nope\b|wrong\b|that'?s (?:not right|wrong|not true|incorrect)|"
    r"that is (?:not right|wrong|not true|incorrect)|actually,? (?:no|it'?s)|not \w+,)",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """A line asking something: it ends with a question mark (its last sentence does), or
    opens with a wh-word or an inverted auxiliary ("Do you remember ...", "Where ..."),
    or a request to be told ("Tell me ...")."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith("?"):
        return True
    last = re.split(r"(?<=[.!])\s+", stripped)[-1]
    return bool(_QUESTION_START.match(last) or _ASK.match(last))


def act_of(text: str, role: str) -> Act:
    """The act of a line said by ``role`` (``user``, ``persona`` or ``system``)."""
    if role == "persona":
        return "reply"
    return "question" if is_question(text) else "statement"


def is_correction(text: str) -> bool:
    """A user line that opens by saying the previous reply was wrong."""
    return bool(_CORRECTION.match(text))


__all__ = ["Act", "act_of", "is_correction", "is_question"]
