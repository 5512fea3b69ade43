"""Reuse of a persona's evaluated prompt prefix on the local model.

Every prompt of a persona starts with the same system message (its card), so llama.cpp
need not read it again for each new session. After the first time, the model's state at
the end of that prefix is kept in memory, keyed by the prefix's tokens (they change
whenever the persona or the prompt composer does). A later prompt that starts with the
same tokens restores the state and evaluates only what follows: the memories, the last
turns and the question. When the context already holds the prefix (the same persona
again) nothing is restored at all.

Only for models whose chat template is the GGUF's own (Jinja2): the prompt's tokens are
then known before generation, so the prefix can be found and evaluated on its own."""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["ChatPrompt", "PrefixCache", "chat_formatter", "format_chat"]

log = logging.getLogger(__name__)

_MIN_PREFIX_TOKENS = 32  # shorter prefixes are cheaper to evaluate than to restore
_DEFAULT_CAPACITY = 256 << 20


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """A formatted chat prompt: its tokens, the template's stop strings, and how many
    leading tokens are the system message (0: none worth reusing)."""

    tokens: list[int]
    stop: list[str]
    stopping_criteria: Any
    prefix: int


def chat_formatter(llama: Llama) -> Any | None:
    """The model's GGUF chat template as a formatter, or None when the model formats
    its prompts another way (then no prefix is reused)."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if llama.chat_format != "chat_template.default" or not template or llama.chat_handler:
        return None
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "ignore"),
        bos_token=llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "ignore"),
        stop_token_ids=[llama.token_eos()],
    )


def format_chat(llama: Llama, formatter: Any, messages: list[dict[str, str]]) -> ChatPrompt:
    """``messages`` formatted and tokenized as ``create_chat_completion`` would, with
    the length of the system message's share of the tokens."""

    def tokens(of: list[dict[str, str]]) -> tuple[list[int], Any]:
        result = formatter(messages=of)
        encoded = llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return encoded, result

    full, result = tokens(messages)
    prefix = 0
    if messages and messages[0]["role"] == "system" and len(messages) > 1:
        alone, _ = tokens(messages[:1])
        for a, b in zip(full, alone, strict=False):
            if a != b:
                break
            prefix += 1
    stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
    return ChatPrompt(full, stop, result.stopping_criteria, prefix)


@dataclass(frozen=True, slots=True)
class _State:
    tokens: tuple[int, ...]
    data: bytes


class PrefixCache:
    """Saved model states at the end of system prefixes, least recently used dropped
    first beyond ``capacity_bytes``. Used under the model's own lock."""

    def __init__(self, capacity_bytes: int = _DEFAULT_CAPACITY) -> None:
        self._capacity = capacity_bytes
        self._states: OrderedDict[tuple[int, ...], _State] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def prepare(self, llama: Llama, prompt: ChatPrompt) -> None:
        """Make the model's context start with ``prompt``'s system prefix: keep it when
        it is there, restore it when saved, else evaluate it alone and save it. The
        generation that follows evaluates only the rest of the prompt."""
        n = prompt.prefix
        if n < _MIN_PREFIX_TOKENS:
            return
        key = tuple(prompt.tokens[:n])
        if _common(llama, prompt.tokens) >= n:
            return  # the context holds this prefix already
        with self._lock:
            saved = self._states.get(key)
            if saved is not None:
                self._states.move_to_end(key)
        if saved is not None and _restore(llama, saved):
            self.hits += 1
            return
        self.misses += 1
        llama.reset()  # type: ignore[no-untyped-call]
        llama.eval(list(key))
        self._put(_State(key, _save(llama)))

    def _put(self, state: _State) -> None:
        with self._lock:
            old = self._states.pop(state.tokens, None)
            if old is not None:
                self._size -= len(old.data)
            self._states[state.tokens] = state
            self._size += len(state.data)
            while self._size > self._capacity and len(self._states) > 1:
                _, dropped = self._states.popitem(last=False)
                self._size -= len(dropped.data)
        log.debug("prefix saved tokens=%d bytes=%d", len(state.tokens), len(state.data))


def _common(llama: Llama, tokens: list[int]) -> int:
    n = 0
    for a, b in zip(llama.input_ids[: llama.n_tokens].tolist(), tokens, strict=False):
        if a != b:
            break
        n += 1
    return n


def _save(llama: Llama) -> bytes:
    import llama_cpp

    ctx = llama._ctx.ctx
    size = int(llama_cpp.llama_state_get_size(ctx))
    buffer = (ctypes.c_uint8 * size)()
    written = int(llama_cpp.llama_state_get_data(ctx, buffer, size))
    return bytes(buffer)[:written]


def _restore(llama: Llama, state: _State) -> bool:
    import llama_cpp

    buffer = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
    if llama_cpp.llama_state_set_data(llama._ctx.ctx, buffer, len(state.data)) != len(state.data):
        log.warning("prefix state not restored: tokens=%d", len(state.tokens))
        llama.reset()  # type: ignore[no-untyped-call]
        return False
    n = len(state.tokens)
    llama.input_ids[:n] = state.tokens
    llama.n_tokens = n
    llama._requires_eval = True  # the logits are not this context's: evaluate the rest
    return True
