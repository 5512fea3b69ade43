"""An OpenAI-compatible chat API beside Socket.IO, so any OpenAI SDK or client can talk
to the personas.

``GET /v1/models`` lists the active personas as models ``persona/<slug>``;
``POST /v1/chat/completions`` answers as one of them through the same path as a
Socket.IO ``message.send`` (the chat service: ownership, rate limits, the user message
stored once, the turn graph with memories, traits and drift), streamed as server-sent
events in OpenAI's chunk format ending ``data: [DONE]``, or as one JSON completion.

Who: the bearer token is a Personae JWT (with no secret configured every caller is the
local admin, who may name the user with the request's ``user``). Where: the session
named by the ``X-Personae-Session`` header (a UUID, or any other name, mapped to a UUID
per user and persona by a digest keyed with the server's secret, so that no one can
compute another user's), else one session per user and persona. What is stored: only the
request's last message, the user's; its id is derived from the conversation up to it,
so a client that resends the whole history stores each message once. Parameters are
checked by type and range as OpenAI checks them (:mod:`socket_server.openai_params`).
Errors come in OpenAI's shape, ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.prompt import estimate_tokens
from agents.turn.respond import COMPLETION_TOKENS, PROMPT_TOKENS
from memory import check_name
from memory.record.transcripts import Message, Session
from personas import Persona, PersonaNotFound
from runtime.infra.auth import Principal, speaker_name
from runtime.settings import Settings
from runtime.usecases.chat import ChatService
from runtime.views import (
    ChatCompletion,
    ChatCompletionChunk,
    ModelList,
    ModelView,
    UsageChunk,
    View,
)
from runtime.views.errors import OpenAIErrorBody, OpenAIErrorDetail, OpenAIErrorType
from runtime.views.openai_compat import (
    MODEL_PREFIX,
    AssistantMessage,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    StreamEvent,
    Usage,
)
from socket_server.auth import principal
from socket_server.errors import ClientError, error_payload, http_error
from socket_server.http_io import json_view, read_json
from socket_server.keys import CHAT, SERVICES, SIO
from socket_server.openai_params import InvalidParameter, OpenAIParameters, invalid_parameter
from socket_server.queue_events import Event, QueueEvents
from socket_server.room_events import RoomEvents
from socket_server.routes import Route

log = logging.getLogger(__name__)

SESSION_HEADER = "X-Personae-Session"
_EVENT_GRACE_S = 30.0  # beyond the model's own timeout, for the turn's other steps

# a Personae error code -> (HTTP status, OpenAI error type)
_ERRORS: dict[str, tuple[int, OpenAIErrorType]] = {
    "invalid_payload": (400, "invalid_request_error"),
    "text_too_long": (400, "invalid_request_error"),
    "unauthorized": (401, "authentication_error"),
    "forbidden": (403, "permission_error"),
    "not_found": (404, "invalid_request_error"),
    "model_not_found": (404, "invalid_request_error"),
    "session_not_found": (404, "invalid_request_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "body_too_large": (413, "invalid_request_error"),
    "rate_limited": (429, "rate_limit_error"),
    "llm_stream_broken": (502, "api_error"),
    "llm_empty": (502, "api_error"),
    "llm_unavailable": (503, "api_error"),
    "service_unavailable": (503, "api_error"),
    "shutting_down": (503, "api_error"),
    "timeout": (504, "api_error"),
}


class _Body(BaseModel):
    # fields of a message this API does not read (tool calls, audio...) are ignored
    model_config = ConfigDict(extra="ignore", frozen=True)


class ContentPart(_Body):
    type: str = Field(max_length=40)
    text: str | None = None


class ChatMessageIn(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(default=None, max_length=64)

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(p.text or "" for p in self.content if p.type == "text")


class CompletionRequest(OpenAIParameters):
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=10_000)


# ---- errors ---------------------------------------------------------------------------


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure of a /v1 request, a refused token and an unknown path included, in
    OpenAI's error shape (a stream already started reports its own, see :func:`_stream`)."""
    try:
        return await handler(request)
    except Exception as exc:  # noqa: BLE001 (every failure in OpenAI's error shape)
        return openai_error(exc, request)


def openai_error(exc: BaseException, request: web.Request) -> web.Response:
    """``exc`` as OpenAI's error object, with the status its code maps to."""
    allow = None
    if isinstance(exc, web.HTTPException):
        allow = exc.headers.get("Allow")
        exc = http_error(exc)
    payload = error_payload(exc, where=f"{request.method} {request.path}")
    code = str(payload["code"])
    status, kind = _ERRORS.get(code, (500, "api_error"))
    if code == "persona_not_found":
        status, kind, code = 404, "invalid_request_error", "model_not_found"
    headers = {"WWW-Authenticate": 'Bearer realm="personae"'} if status == 401 else {}
    if allow is not None:
        headers["Allow"] = allow
    log.debug("%s %s -> %d %s", request.method, request.path, status, code)
    param = exc.param if isinstance(exc, InvalidParameter) else None
    detail = OpenAIErrorDetail(message=payload["message"], type=kind, param=param, code=code)
    return json_view(OpenAIErrorBody(error=detail), status, headers=headers)


async def _persona(request: web.Request, model: str) -> Persona:
    """The active persona ``model`` names: ``persona/<slug>`` (or ``persona/<id>``)."""
    if not model.startswith(MODEL_PREFIX):
        raise ClientError(
            "model_not_found",
            f"the model {model!r} does not exist: personas are models named "
            f"{MODEL_PREFIX}<slug>, such as {MODEL_PREFIX}{model.strip()[:100] or 'tutor'}",
        )
    key = model.removeprefix(MODEL_PREFIX).strip()
    try:
        persona = await request.config_dict[SERVICES].personas.get(key) if key else None
    except PersonaNotFound:
        persona = None
    if persona is None or not persona.active:
        raise ClientError("model_not_found", f"the model {model!r} does not exist")
    return persona


# ---- models ---------------------------------------------------------------------------


async def list_models(request: web.Request) -> web.Response:
    """Every active persona, as a model."""
    store = request.config_dict[SERVICES].personas
    models: list[ModelView] = []
    offset = 0
    while True:
        page = await store.list(offset=offset, limit=200, active=True)
        models.extend(ModelView.of(p) for p in page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    return json_view(ModelList(data=models))


async def get_model(request: web.Request) -> web.Response:
    persona = await _persona(request, request.match_info["model"])
    return json_view(ModelView.of(persona))


# ---- chat completions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Turn:
    """One completion request, resolved: who asks whom, in which session, saying what."""

    principal: Principal
    user_name: str
    persona: Persona
    session: Session
    text: str
    client_msg_id: str
    model: str
    prompt_tokens: int


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = await read_json(request, CompletionRequest)
    except ValidationError as exc:
        raise invalid_parameter(exc) from None
    turn = await _resolve(request, principal(request), body)
    chat = request.config_dict[CHAT]
    events = QueueEvents(turn.persona.id, RoomEvents(request.config_dict[SIO], turn.session.id))
    async with _answered(chat, turn, events):
        first = await events.next(_wait_s(request))
        if first[0] == "failed":
            raise ClientError(first[1], first[2])
        if body.stream:
            return await _stream(request, turn, events, first, body)
        return await _complete(request, turn, events, first)


def _wait_s(request: web.Request) -> float:
    return _wait_s_for(request.config_dict[CHAT])


def _wait_s_for(chat: ChatService) -> float:
    return float(chat.services.settings.llm_timeout_s) + _EVENT_GRACE_S


async def _resolve(request: web.Request, principal: Principal, body: CompletionRequest) -> _Turn:
    if principal.is_admin and body.user and body.user != principal.user_id:
        principal = Principal(body.user, principal.role)  # an admin speaks for a user
    persona = await _persona(request, body.model)
    last = body.messages[-1]
    if last.role != "user":
        raise ClientError("invalid_payload", "messages: the last message must be the user's")
    text = last.text()
    if not text.strip():
        raise ClientError("invalid_payload", "messages: the user's last message has no text")
    name = speaker_name(principal.user_id)
    if last.name is not None and last.name.strip():
        try:
            name = check_name(last.name, "name")
        except ValueError as exc:
            param = f"messages[{len(body.messages) - 1}].name"
            raise InvalidParameter(param, str(exc)) from None
    session = await _session(request, principal, persona)
    return _Turn(
        principal=principal,
        user_name=name,
        persona=persona,
        session=session,
        text=text,
        client_msg_id=_message_id(body.messages, request.headers.get("Idempotency-Key")),
        model=MODEL_PREFIX + persona.slug,
        prompt_tokens=sum(estimate_tokens(m.text()) for m in body.messages),
    )


def _message_id(messages: list[ChatMessageIn], key: str | None) -> str:
    """The stored user message's id: the client's ``Idempotency-Key`` when it sends one;
    else, with earlier turns in the request, a digest of the conversation up to it, so
    the same history sent again names the same message; else (no earlier turn) a new
    message every time."""
    if key is not None and key.strip():
        if len(key) > 80 or "\x00" in key:
            raise ClientError("invalid_payload", "Idempotency-Key: 1 to 80 characters")
        return f"v1k:{key.strip()}"
    said = [(m.role, m.text()) for m in messages if m.role in ("user", "assistant")]
    if len(said) < 2:
        return f"v1:{uuid.uuid4().hex}"
    digest = hashlib.sha256(json.dumps(said, ensure_ascii=False).encode("utf-8"))
    return f"v1:{digest.hexdigest()[:40]}"


async def _session(request: web.Request, principal: Principal, persona: Persona) -> Session:
    """The header's session (created for this persona when new), or the caller's one
    session with this persona."""
    named = request.headers.get(SESSION_HEADER, "").strip()
    if len(named) > 200 or "\x00" in named:
        raise ClientError("invalid_payload", f"{SESSION_HEADER}: 1 to 200 characters")
    try:
        session_id = uuid.UUID(named)
    except ValueError:
        session_id = session_id_for(
            request.config_dict[SERVICES].settings, principal.user_id, persona.id, named
        )
    return await request.config_dict[CHAT].open_session(
        principal, persona, session_id=session_id, title=f"{persona.name} (OpenAI API)"
    )


def session_id_for(settings: Settings, user_id: str, persona_id: uuid.UUID, name: str) -> uuid.UUID:
    """The session a user's name (or no name) maps to for a persona: a keyed digest
    (HMAC-SHA256 under a key derived from the server's secret) of the user, persona and
    name, so nobody without the secret can compute another user's session id and take
    it first. With no secret every caller is the local admin, and a fixed key is used."""
    secret = settings.auth_secret
    base = secret.get_secret_value().encode() if secret is not None else b"personae-local"
    key = hmac.new(base, b"personae /v1 session names", hashlib.sha256).digest()
    said = "\x1f".join((user_id, str(persona_id), name)).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, said, hashlib.sha256).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


class _answered:
    """Send the user message through the chat service (its turn runs in the background,
    as for Socket.IO); a resend of a stored message runs its turn here instead, which
    reports the stored reply when there is one. On exit, a turn run here is awaited."""

    def __init__(self, chat: ChatService, turn: _Turn, events: QueueEvents) -> None:
        self._chat, self._turn, self._events = chat, turn, events
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> None:
        t = self._turn
        sent = await self._chat.send(
            t.principal,
            user_name=t.user_name,
            session_id=t.session.id,
            text=t.text,
            client_msg_id=t.client_msg_id,
            events=self._events,
            to=[t.persona.slug],
        )
        if sent.duplicate:
            self._task = asyncio.create_task(
                self._resent(sent.message), name=f"v1-resent-{sent.message.id}"
            )
            self._task.add_done_callback(self._events.on_task_done)

    async def _resent(self, message: Message) -> None:
        """A stored message sent again: the chat service waits for its turn running here,
        then reports the stored reply, or answers it under the session's lock and the
        caller's limits when there is none (see :meth:`ChatService.answer_again`)."""
        t = self._turn
        await self._chat.answer_again(
            t.principal,
            t.session,
            message,
            user_name=t.user_name,
            events=self._events,
            to=[t.persona.slug],
            wait_s=_wait_s_for(self._chat),
        )

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=_EVENT_GRACE_S)


async def _complete(
    request: web.Request, turn: _Turn, events: QueueEvents, event: Event
) -> web.Response:
    while event[0] == "token":
        event = await events.next(_wait_s(request))
    if event[0] == "failed":
        raise ClientError(event[1], event[2])
    message: Message = event[1]
    completion = ChatCompletion(
        id=f"chatcmpl-{message.id.hex}",
        created=int(message.created_at.timestamp()),
        model=turn.model,
        choices=[
            Choice(
                message=AssistantMessage(content=message.text),
                finish_reason=_finish(message),
            )
        ],
        usage=_usage(turn, message),
    )
    return json_view(completion, headers={SESSION_HEADER: str(turn.session.id)})


def _finish(message: Message) -> FinishReason:
    return "stop" if message.status == "complete" else "length"


def _usage(turn: _Turn, reply: Message) -> Usage:
    """The reply's token counts as its model reported them (stored with the reply: the
    prompt it read, persona card and memories included, and the tokens it wrote); from a
    model that reports none, estimates (about four characters a token) of the request's
    messages and the reply."""
    prompt = reply.timings.get(PROMPT_TOKENS)
    completion = reply.timings.get(COMPLETION_TOKENS)
    if not isinstance(prompt, int | float) or not isinstance(completion, int | float):
        prompt, completion = turn.prompt_tokens, estimate_tokens(reply.text)
    return Usage(
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        total_tokens=int(prompt) + int(completion),
    )


async def _stream(
    request: web.Request,
    turn: _Turn,
    events: QueueEvents,
    event: Event,
    body: CompletionRequest,
) -> web.StreamResponse:
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: Delta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=chunk_id,
            created=created,
            model=turn.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )

    def error(code: str, message: str, kind: OpenAIErrorType) -> OpenAIErrorBody:
        return OpenAIErrorBody(
            error=OpenAIErrorDetail(message=message, type=kind, param=None, code=code)
        )

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            SESSION_HEADER: str(turn.session.id),
        }
    )
    await response.prepare(request)

    async def send(data: View | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data.wire(), ensure_ascii=False)
        await response.write(f"data: {text}\n\n".encode())

    streamed: list[str] = []
    try:
        await send(chunk(Delta(role="assistant", content="")))
        while event[0] == "token":
            streamed.append(event[1])
            await send(chunk(Delta(content=event[1])))
            event = await events.next(_wait_s(request))
        if event[0] == "failed":
            code, message = event[1], event[2]
            await send(error(code, message, _ERRORS.get(code, (500, "api_error"))[1]))
            return response
        stored: Message = event[1]
        said = "".join(streamed)
        if not said and stored.text:
            await send(chunk(Delta(content=stored.text)))  # a stored reply, reported again
        elif stored.text != said and stored.text.startswith(said):
            await send(chunk(Delta(content=stored.text[len(said) :])))
        await send(chunk(Delta(), _finish(stored)))
        if body.stream_options is not None and body.stream_options.include_usage:
            await send(
                UsageChunk(
                    id=chunk_id,
                    created=created,
                    model=turn.model,
                    choices=[],
                    usage=_usage(turn, stored),
                )
            )
        await send("[DONE]")
        await response.write_eof()
    except ConnectionResetError:
        # the client left: the turn goes on and its reply is stored
        log.info("client left the stream of session %s", turn.session.id)
    except Exception as exc:  # noqa: BLE001 (the headers are sent: the stream says it)
        payload = error_payload(exc, where=f"stream of session {turn.session.id}")
        with contextlib.suppress(ConnectionResetError):
            await send(error(str(payload["code"]), str(payload["message"]), "api_error"))
    return response


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/models",
        list_models,
        "Every active persona as a model, persona/<slug>",
        "openai",
        response=ModelList,
    ),
    Route(
        "GET",
        "/models/{model:.+}",
        get_model,
        "One persona as a model",
        "openai",
        response=ModelView,
        errors=(404,),
    ),
    Route(
        "POST",
        "/chat/completions",
        chat_completions,
        "A reply as the persona the model names; with stream: true, server-sent "
        "chat.completion.chunk events ending data: [DONE]",
        "openai",
        response=ChatCompletion,
        body=CompletionRequest,
        events=StreamEvent,
        errors=(403, 404, 429, 502, 503, 504),
    ),
)
