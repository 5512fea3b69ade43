"""The parameters of OpenAI's chat completion request that ``/v1`` accepts besides
``model`` and ``messages``, checked by type and range as OpenAI checks them (a string
where a number belongs is refused, not read as one), and the error that names the
parameter a request got wrong.

A persona's reply is written the way its definition says (its style sets temperature
and length), so most of these are validated and then ignored; the ones that ask for
what a persona's reply cannot be (several choices, log probabilities, a tool call, audio,
JSON) are refused. ``docs/ecosystem.md`` lists which is which."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from socket_server.errors import ClientError

Decimal = Annotated[float, Field(allow_inf_nan=False)]
Penalty = Annotated[Decimal, Field(ge=-2, le=2)]
TokenLimit = Annotated[int, Field(ge=1)]
ShortText = Annotated[str, Field(max_length=512)]
Bias = Annotated[int | float, Field(ge=-100, le=100, allow_inf_nan=False)]


class _Strict(BaseModel):
    # JSON types as OpenAI takes them: no string for a number, no number for a boolean;
    # names OpenAI does not define are ignored (clients add their own)
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class _Open(_Strict):
    """An object whose fields the API does not use: any keys, any values."""

    model_config = ConfigDict(extra="allow")


class FunctionDef(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(_Strict):
    name: str = Field(min_length=1, max_length=64)


class NamedTool(_Strict):
    type: Literal["function"]
    function: FunctionName


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class Prediction(_Strict):
    type: Literal["content"]
    content: str | list[dict[str, Any]]


class OpenAIParameters(_Strict):
    """OpenAI's optional chat completion parameters, each with its type and range."""

    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=1, ge=1, le=1, description="one choice: a persona answers once")
    user: str | None = Field(default=None, min_length=1, max_length=128)
    # validated, then ignored: the persona's style decides how its reply is written
    temperature: Decimal | None = Field(default=None, ge=0, le=2)
    top_p: Decimal | None = Field(default=None, ge=0, le=1)
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    max_tokens: TokenLimit | None = None
    max_completion_tokens: TokenLimit | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    logit_bias: dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], Bias] | None = None
    metadata: dict[Annotated[str, Field(max_length=64)], ShortText] | None = Field(
        default=None, max_length=16
    )
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    prompt_cache_key: ShortText | None = None
    safety_identifier: Annotated[str, Field(max_length=64)] | None = None
    prediction: Prediction | None = None
    web_search_options: _Open | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedTool | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[FunctionDef], Field(max_length=128)] | None = None
    function_call: Literal["none", "auto"] | FunctionName | None = None
    # refused unless they ask for what a persona's reply is anyway (see _refuse)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: _Open | None = None

    @model_validator(mode="after")
    def _refuse(self) -> OpenAIParameters:
        # not a ValueError: pydantic passes it on as it is, the parameter named
        refused = _refusal(self)
        if refused is not None:
            raise InvalidParameter(*refused)
        return self


def _refusal(p: OpenAIParameters) -> tuple[str, str] | None:
    """The parameter asking for a reply no persona gives, and why, or None."""
    if p.logprobs:
        return "logprobs", "not supported: a persona's reply has no log probabilities"
    if p.top_logprobs:
        return "top_logprobs", "not supported: a persona's reply has no log probabilities"
    if p.tool_choice == "required" or isinstance(p.tool_choice, NamedTool):
        return "tool_choice", "not supported: a persona answers in words, never with a tool call"
    if isinstance(p.function_call, FunctionName):
        return "function_call", "not supported: a persona answers in words, never with a call"
    if p.response_format is not None and p.response_format.type != "text":
        return "response_format", "only 'text': a persona answers in prose, not JSON"
    if p.audio is not None or (p.modalities and "audio" in p.modalities):
        return "modalities", "only 'text': a persona's reply has no audio"
    return None


class InvalidParameter(ClientError):
    """A request parameter of the wrong type or out of range; ``param`` names it as
    OpenAI does (``messages[0].role``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__("invalid_payload", f"Invalid '{param}': {message}")
        self.param = param


def invalid_parameter(exc: ValidationError) -> ClientError:
    """The first problem of a request body that failed validation, naming its parameter."""
    errors = exc.errors()
    first = errors[0]
    # a union reports each member's error: the one past the type check, or the one that
    # got deepest into the value, is the member it was meant for; when every member
    # refused the value's type alike, any of them was expected
    same = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
    depth = max(len(e["loc"]) for e in same)
    deepest = [e for e in same if len(e["loc"]) == depth]
    err = next((e for e in same if e["type"] not in _EXPECTED), deepest[0])
    param = _param(err["loc"]) or "body"
    kind = str(err["type"])
    if kind in _EXPECTED:
        expected = " or ".join(dict.fromkeys(_EXPECTED[str(e["type"])] for e in deepest))
        got = _json_type(err.get("input"))
        return InvalidParameter(param, f"expected {expected}, but got {got} instead")
    if kind == "missing":
        return InvalidParameter(param, "missing required parameter")
    message = str(err["msg"])
    return InvalidParameter(param, message[:1].lower() + message[1:])


_EXPECTED = {
    "float_type": "a number",
    "finite_number": "a finite number",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _param(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as OpenAI names a parameter: ``messages[0].content``; the
    names pydantic gives a union's members (``str``, ``list[str]``) are left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in _UNION_TAGS or part.startswith(("function-", "literal[")):
            continue
        else:
            out += f".{part}" if out else part
    return out


_UNION_TAGS = {"str", "int", "float", "bool", "NamedTool", "FunctionName"}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
